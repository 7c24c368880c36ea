/**
 * recordVerdict step: one transaction consumes the nonce and stores the attestation, the token
 * issued for it, the host's new health and deadline, the audit entry, its IMA state, and (on a health change) the
 * webhook notifications and token revocations, so a verdict is never half recorded. On SQLite,
 * verdicts that arrive together share one commit, each in its own savepoint (Store.groupedTransaction);
 * on PostgreSQL a verdict that keeps the host's health is one statement, audit entry included.
 */
import { attestationRow, toAttestation, type Attestation, type Host, type ImaStateRecord, type NewAuditEntry, type NewHostEvidence, type Repos, type Store } from "../store/index.js";
import type { AttestConfig } from "./config.js";
import { healthChanged, type HealthChange } from "./health.js";
import { imaStateMoved } from "./ima.js";
import type { PolicyRef, SignedToken } from "../tokens/tokens.js";

export interface VerdictInput {
  /** the challenge this evidence answers: consumed first, so a reused or expired nonce records nothing */
  nonce: { value: Buffer; purpose: string; subject: string };
  /** `health`: as read before judging (a verdict that keeps it takes the short path) */
  host: Pick<Host, "name" | "hardwareClass" | "health">;
  akName: Buffer;
  verdict: "pass" | "fail";
  /** stable ERR_… code of a failure */
  code: string | null;
  message?: string;
  pcrDigest?: Buffer;
  diff?: unknown;
  policies: PolicyRef[];
  details: Record<string, unknown>;
  token?: SignedToken;
  /** the host's verified evidence, to keep for `policy add --dry-run` */
  evidence?: NewHostEvidence;
  /** the host's new IMA state, stored only over the version it was judged from */
  ima?: { record: Omit<ImaStateRecord, "state"> & { state: string }; expected: string | null };
}

/** The IMA state goes with the verdict, or neither does (another attestation of the host moved it on). */
async function putIma(tx: Repos, v: VerdictInput): Promise<void> {
  if (v.ima && !(await tx.imaState.put(v.ima.record, v.ima.expected))) throw imaStateMoved(v.host.name);
}

export async function recordVerdict(store: Store, cfg: AttestConfig, at: number, v: VerdictInput): Promise<{ attestation: Attestation; change?: HealthChange }> {
  const actor = `host:${v.host.name}`;
  const health = v.verdict === "pass" ? "healthy" : "unhealthy";
  const deadlineAt = at + cfg.intervalMs * cfg.grace;
  const row = attestationRow({
    hostName: v.host.name,
    verdict: v.verdict,
    reasonCode: v.code,
    akName: v.akName,
    pcrDigest: v.pcrDigest ?? null,
    diff: v.diff ?? null,
    details: { policies: v.policies, ...(v.message ? { message: v.message } : {}), ...v.details },
    at,
  });
  const t = v.token;
  const tokenRow = t ? { jti: t.jti, host_name: v.host.name, kid: t.kid, attestation_id: row.id, issued_at: t.issuedAt, expires_at: t.expiresAt } : null;
  const entry: NewAuditEntry = {
    actor,
    action: "attestation.verdict",
    subject: v.host.name,
    outcome: v.verdict === "pass" ? "success" : "failure",
    details: {
      attestationId: row.id,
      verdict: v.verdict,
      code: v.code,
      akName: v.akName,
      pcrDigest: v.pcrDigest ?? null,
      policies: v.policies,
      // the token issued on this verdict: one audit entry per attestation keeps appends cheap
      token: t ? { jti: t.jti, kid: t.kid, expiresAt: t.expiresAt } : null,
    },
    at,
  };
  // the steady state on PostgreSQL (health unchanged): the verdict's rows and its audit entry in one
  // statement; when it cannot (or fails, e.g. the audit log cannot be written), nothing of it was
  // written and the general path below records the verdict or says why not. A new IMA state, whose
  // write may be refused, takes the general path.
  if (store.dialect === "postgres" && v.host.health === health && !v.ima) {
    const nonce = { value: v.nonce.value.toString("hex"), purpose: v.nonce.purpose, subject: v.nonce.subject };
    const { subject: _subject, at: _at, ...audit } = entry;
    const recorded = await store.verdicts.recordUnchanged({ nonce, health, deadlineAt, attestation: row, token: tokenRow, evidence: v.evidence ?? null, audit }).catch(() => false);
    if (recorded) return { attestation: toAttestation(row) };
  }
  return store.groupedTransaction(async (tx) => {
    await tx.nonces.consume({ ...v.nonce, at });
    // the host row first, then the audit head: every writer takes them in this order (no deadlocks)
    const r = await tx.hosts.attested(v.host.name, { health, reason: v.code, at, deadlineAt });
    const attestation = await tx.attestations.record(row);
    await tx.audit.append(entry);
    if (tokenRow) await tx.tokens.record({ jti: tokenRow.jti, hostName: tokenRow.host_name, kid: tokenRow.kid, attestationId: row.id, issuedAt: tokenRow.issued_at, expiresAt: tokenRow.expires_at });
    if (v.evidence) await tx.hostEvidence.put(v.evidence);
    await putIma(tx, v);
    if (!r.changed) return { attestation };
    const change: HealthChange = { host: v.host.name, hardwareClass: v.host.hardwareClass, previous: r.previous, health, reason: v.code, at, attestationId: attestation.id };
    await healthChanged(tx, change, actor);
    return { attestation, change };
  });
}
