/**
 * Pending key attestation requests (the CMC EK challenge round trip, src/ca/cmc.ts) as operators see
 * them, as `certutil -view` lists AD CS's pending requests: who asked, for which template and key, the
 * EK challenged, when the challenge expires; and denial of one (AD CS: `certutil -deny`), audited as
 * event 53. A denied request is forgotten: its answer then finds no request (ERR_NONCE_UNKNOWN).
 */
import { TpmTrustError } from "../errors.js";
import type { CaPending, Store } from "../store/index.js";
import { parseCsr } from "../verify/csr.js";
import { ADCS_EVENT } from "./enroll.js";

export interface PendingRequestView {
  requestId: number;
  /** pending: waiting for the answer; answered: the answer came (right or wrong); expired: it never came */
  state: "pending" | "answered" | "expired";
  template: string;
  subject: string;
  /** the audit actor of the request (e.g. anonymous, or an admin or enroller token) */
  requester: string;
  requesterTokenId: string | null;
  /** SHA-256 of the EKpub the challenge is made to */
  ekHash: string;
  ekCertificates: number;
  aikName: string;
  createdAt: string;
  expiresAt: string;
  answeredAt: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

function view(p: CaPending, now: number): PendingRequestView {
  let subject: string;
  try {
    subject = parseCsr(p.csr).subject;
  } catch {
    subject = "(unreadable)";
  }
  return {
    requestId: p.requestId,
    state: p.answeredAt !== null ? "answered" : p.expiresAt <= now ? "expired" : "pending",
    template: p.template,
    subject,
    requester: p.requester.actor,
    requesterTokenId: p.requester.tokenId,
    ekHash: p.ekHash,
    ekCertificates: p.ekCerts.length,
    aikName: p.aikName.toString("hex"),
    createdAt: iso(p.createdAt),
    expiresAt: iso(p.expiresAt),
    answeredAt: p.answeredAt === null ? null : iso(p.answeredAt),
  };
}

/** Requests waiting for their challenge's answer, newest first; with `all` the answered and expired ones too. */
export async function listPendingRequests(store: Store, o: { all?: boolean; limit?: number; now: number }): Promise<PendingRequestView[]> {
  return (await store.caPending.list({ all: o.all, at: o.now, limit: o.limit ?? 1000 })).map((p) => view(p, o.now));
}

export async function getPendingRequest(store: Store, requestId: number, now: number): Promise<PendingRequestView> {
  const p = await store.caPending.get(requestId);
  if (!p) throw new TpmTrustError("ERR_NOT_FOUND", `no key attestation request ${requestId}`, { requestId });
  return view(p, now);
}

/** Denies a request still waiting for its answer: removed with its audit entry (event 53) in one transaction. */
export async function denyPendingRequest(store: Store, requestId: number, o: { reason?: string | null; actor: string; now: number }): Promise<PendingRequestView> {
  return store.transaction(async (tx) => {
    const p = await tx.caPending.get(requestId);
    if (!p) throw new TpmTrustError("ERR_NOT_FOUND", `no key attestation request ${requestId}`, { requestId });
    const v = view(p, o.now);
    if (v.state !== "pending") throw new TpmTrustError("ERR_CONFLICT", `request ${requestId} is ${v.state}: only a request waiting for its answer can be denied`, { requestId, state: v.state });
    await tx.caPending.remove(requestId);
    await tx.audit.append({
      actor: o.actor,
      action: "ca.request.denied",
      subject: p.template,
      outcome: "denied",
      details: { adcsEvent: ADCS_EVENT.requestDenied, reason: o.reason ?? "denied by an administrator", requestId, deniedBy: o.actor, requester: p.requester.actor, subject: v.subject, ekHash: p.ekHash },
      at: o.now,
    });
    return v;
  });
}
