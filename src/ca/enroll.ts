/**
 * Certificate enrollment with TPM key attestation (AD CS semantics):
 *
 *   template → token requester admitted → parse CSR → CSR signature → key type → evidence
 *   (tpmtrust certify or KAST) → verifyEvidence (AK bound, signature, Name, key attributes,
 *   CSR key = certified key, nonce) → trust models (ek-key / ek-cert / user-credentials)
 *   → requester admitted → names (from the host or the request) → issue with the passed models' OIDs
 *
 * decideEnrollment runs every step but the last and hands the decision on: enroll issues at once;
 * the CMC round trip (src/ca/cmc.ts) instead challenges the EK of a KAST whose AIK is not bound
 * ("kast-ek": trust models judge the EK the request sent) and issues after the answer.
 *
 * The requester is the token's holder (an admin, or an enroller with its identity), else the attested
 * host, else anonymous; the template names who may enroll. `none` ignores evidence;
 * `required-if-capable` checks evidence only when the request carries some and issues without
 * attestation policies when the check fails (recorded with the certificate and audited as event 22);
 * `required` rejects every request without valid attestation. Failures are audited like AD CS:
 * `ca.attestation.error` (event 22, the evidence could not be processed) and `ca.request.denied`
 * (event 53), each with the reason code. A certificate is stored in one transaction with its
 * `ca.certificate.issue` entry (and its event 22): when they cannot be written, nothing is issued.
 */
import { TpmTrustError, isAuditableFailure, isTpmTrustError } from "../errors.js";
import type { Host, Repos, Store } from "../store/index.js";
import { parseCsr, verifyCsrSignature, type ParsedCsr } from "../verify/csr.js";
import type { AikInfo, HardwareKeyInfo } from "../verify/ek-info.js";
import { caChain } from "./authority.js";
import { ENROLL_NONCE_PURPOSE, ENROLL_NONCE_TTL_MS, findEvidence, verifyEvidence, type CertifyEvidence, type VerifiedEvidence } from "./evidence.js";
import { checkHostNames, checkKey, checkNames, hostNames, issueFromTemplate, requestedNames, type CertNames } from "./issue.js";
import { HRESULT_INVALID_EK, HRESULT_KEY_ATTESTATION, POLICY_OF, type TrustModel } from "./oids.js";
import { getTemplate, type CertTemplate } from "./templates.js";
import { evaluateTrustModels, type TrustModelResult } from "./trust-models.js";

export interface EnrollRequest {
  template: string;
  /** DER or PEM */
  csr: Uint8Array | string;
  evidence?: CertifyEvidence;
  /** a Windows request's decrypted EK info (POST /v1/ca/cmc), and whether its EK challenge was answered */
  ek?: { info: HardwareKeyInfo; proven: boolean };
  /** a Windows request's decrypted AIK info (POST /v1/ca/cmc) */
  aik?: AikInfo;
  /** the CMC request id (audited) */
  requestId?: number;
}

/** Who sent the request: an API token's holder, or nobody in particular (the evidence may name a host). */
export type TokenRequester = { kind: "admin"; tokenId: string } | { kind: "enroller"; tokenId: string; identity: string };

export interface EnrollCaller {
  /** audit actor */
  actor: string;
  /** the authenticated token holder; absent for a request without a token */
  requester?: TokenRequester;
  now: number;
  publicUrl?: string;
}

export interface EnrollResult {
  serial: string;
  /** DER */
  certificate: Buffer;
  /** issuing CA then root, DER */
  chain: Buffer[];
  subject: string;
  notAfter: number;
  /** certificatePolicies stamped into the certificate */
  policies: string[];
  /** trust models that passed (empty without attestation) */
  trustModels: TrustModel[];
  attestation: { format: VerifiedEvidence["format"]; host: string | null; akNameHex: string; freshness: VerifiedEvidence["freshness"] } | null;
  /** required-if-capable: the attestation the request carried failed, and the certificate was issued without it */
  attestationFailure?: { code: string; reason: string };
}

/** AD CS event IDs tpmtrust mirrors in its audit log. */
export const ADCS_EVENT = { attestationError: 22, requestDenied: 53 } as const;

function withDetails(e: TpmTrustError, details: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError(e.code, e.message, { ...(e.details ?? {}), ...details });
}

/** Whether the template admits an attested host as requester: hosts allowed, and of a listed class or with a listed tag when it lists any. */
export function hostAdmitted(t: CertTemplate, host: Pick<Host, "hardwareClass" | "tags"> | undefined): boolean {
  const r = t.requesters;
  if (!r.hosts || !host) return false;
  if (r.hostClasses.length === 0 && r.hostTags.length === 0) return true;
  return r.hostClasses.includes(host.hardwareClass) || host.tags.some((tag) => r.hostTags.includes(tag));
}

/** ERR_FORBIDDEN unless the template admits the token's holder. */
function requireTokenAdmitted(t: CertTemplate, r: TokenRequester): void {
  if (r.kind === "admin" && !t.requesters.admins) throw new TpmTrustError("ERR_FORBIDDEN", `template ${t.name} does not admit administrators as requesters`, { rule: "requesters.admins" });
  if (r.kind === "enroller" && !t.requesters.enrollers.includes(r.identity)) {
    throw new TpmTrustError("ERR_FORBIDDEN", `template ${t.name} does not name enroller ${r.identity} among its requesters`, { rule: "requesters.enrollers", identity: r.identity });
  }
}

/** What enrollment decided, before the certificate is issued (or, for a Windows request, challenged). */
export interface EnrollDecision {
  template: CertTemplate;
  mode: CertTemplate["keyAttestation"]["mode"];
  csr: ParsedCsr;
  names: CertNames;
  /** issuance policies of the trust models that passed (when the template stamps them) */
  policies: string[];
  host: string | null;
  verified?: VerifiedEvidence;
  models?: TrustModelResult;
  /** required-if-capable: the attestation failed and the certificate goes without it */
  failure?: { code: string; reason: string };
  /** with `failure`: the details of its event 22, audited with the certificate */
  attestationError?: Record<string, unknown>;
  /** audit facts gathered so far */
  facts: Record<string, unknown>;
}

/** Everything but issuance: checks the request and hands the decision to `finish`; failures are audited (events 22/53). */
export async function decideEnrollment<T>(store: Store, req: EnrollRequest, c: EnrollCaller, finish: (d: EnrollDecision) => Promise<T>): Promise<T> {
  let stage = "request" as "request" | "attestation";
  const facts: Record<string, unknown> = c.requester?.kind === "enroller" ? { enroller: c.requester.identity } : {};
  if (req.requestId !== undefined) facts.requestId = req.requestId;
  // required-if-capable: event 22 of the attestation that failed, audited with the decision's own entry
  let attestationError: Record<string, unknown> | undefined;
  try {
    const template = await getTemplate(store, req.template);
    const mode = template.keyAttestation.mode;
    facts.mode = mode;
    if (c.requester) requireTokenAdmitted(template, c.requester);
    const csr = parseCsr(req.csr);
    facts.subject = csr.subject;
    await verifyCsrSignature(csr);
    checkKey(template, csr);

    let verified: VerifiedEvidence | undefined;
    let models: TrustModelResult | undefined;
    let failure: { code: string; reason: string } | undefined;
    let evidence = mode === "none" ? undefined : findEvidence(csr, req.evidence);
    if (evidence?.format === "kast" && req.ek) evidence = { ...evidence, format: "kast-ek", ek: req.ek.info, ekProven: req.ek.proven };
    if (evidence?.format === "kast" && req.aik) evidence = { ...evidence, format: "kast-aik", aik: req.aik };
    if (evidence) {
      try {
        stage = "attestation";
        facts.format = evidence.format;
        const v = await verifyEvidence(store, evidence, csr, c.now);
        facts.host = v.host;
        facts.akName = v.akName.toString("hex");
        if (v.aikCertSerial) facts.aikCertSerial = v.aikCertSerial;
        stage = "request";
        const m = await evaluateTrustModels(store, v.ek ? { ek: v.ek } : { host: v.host! }, template.keyAttestation.trustModels, { userVouched: c.requester?.kind === "enroller", now: c.now });
        facts.trustModels = m.outcomes;
        if (v.ek) facts.ekHash = m.ekHashes[0];
        if (m.passed.length === 0) {
          const ekCertFailed = m.outcomes["ek-cert"] && !m.outcomes["ek-cert"].passed;
          throw new TpmTrustError(
            "ERR_EK_NOT_TRUSTED",
            `the TPM's EK is not trusted under template ${template.name}'s trust models (${template.keyAttestation.trustModels.join(", ")}): ${Object.entries(m.outcomes)
              .map(([k, o]) => `${k}: ${o!.reason}`)
              .join("; ")}`,
            { hresult: ekCertFailed ? HRESULT_INVALID_EK : HRESULT_KEY_ATTESTATION, trustModels: m.outcomes, host: v.host },
          );
        }
        [verified, models] = [v, m];
      } catch (e) {
        if (mode !== "required-if-capable" || !isTpmTrustError(e)) throw e;
        // AD CS: "the certificate is issued even if attestation was not successful", without its policies
        failure = { code: e.code, reason: e.message };
        attestationError = { adcsEvent: ADCS_EVENT.attestationError, ...facts, ...failure };
        stage = "request";
        delete facts.host;
      }
    } else if (mode === "required") {
      throw new TpmTrustError("ERR_ATTESTATION_REQUIRED", `template ${template.name} requires key attestation and the request carries none (AD CS CERTSRV_E_KEY_ATTESTATION ${HRESULT_KEY_ATTESTATION})`, {
        hresult: HRESULT_KEY_ATTESTATION,
      });
    }

    // the requester: the token's holder (admitted above), else the attested host, else anonymous
    const host = verified?.host ?? null;
    if (!c.requester) {
      if (host) {
        if (!hostAdmitted(template, await store.hosts.get(host))) {
          throw new TpmTrustError("ERR_FORBIDDEN", `template ${template.name} does not admit host ${host} as a requester`, { rule: "requesters.hosts", host });
        }
      } else if (!template.requesters.anonymous) {
        throw new TpmTrustError("ERR_UNAUTHENTICATED", `template ${template.name} does not admit anonymous requesters: send an API token${mode === "none" ? "" : " or valid key attestation"}`, { rule: "requesters.anonymous" });
      }
    }

    let names;
    if (template.subjectFrom === "host") {
      if (!host) throw new TpmTrustError("ERR_POLICY_FAILED", `template ${template.name} takes the subject from the attested host, and this request attests none`, { rule: "subjectFrom" });
      names = hostNames(template, host);
    } else {
      names = requestedNames(csr);
      if (host) checkHostNames(names, host);
    }
    checkNames(template, names);

    const passed = models?.passed ?? [];
    const policies = template.keyAttestation.includeIssuancePolicies ? passed.map((m) => POLICY_OF[m]) : [];
    return await finish({ template, mode, csr, names, policies, host, verified, models, failure, attestationError, facts });
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    if (attestationError && isAuditableFailure(e)) await auditEnrollment(store, req, c, "ca.attestation.error", "failure", attestationError);
    const hresult = (e.details?.hresult as string | undefined) ?? (stage === "attestation" || e.code === "ERR_ATTESTATION_REQUIRED" ? HRESULT_KEY_ATTESTATION : undefined);
    throw await auditDenied(store, req, c, e, { stage, facts, hresult });
  }
}

function auditEnrollment(store: Repos, req: Pick<EnrollRequest, "template">, c: EnrollCaller, action: string, outcome: "success" | "failure" | "denied", details: Record<string, unknown>) {
  return store.audit.append({ actor: c.actor, action, subject: req.template, outcome, details, at: c.now });
}

/**
 * Audits a refused request as AD CS logs it — event 22 (`ca.attestation.error`) when the attestation
 * could not be processed, always event 53 (`ca.request.denied`), each with the reason and HRESULT —
 * and returns the error to throw, carrying the event and HRESULT. A failed audit write is returned
 * as it is: the log takes no denial either.
 */
export async function auditDenied(
  store: Store,
  req: Pick<EnrollRequest, "template">,
  c: EnrollCaller,
  e: TpmTrustError,
  o: { stage: "request" | "attestation"; facts: Record<string, unknown>; hresult?: string },
): Promise<TpmTrustError> {
  if (e.code === "ERR_AUDIT_WRITE_FAILED") return e;
  const why = { code: e.code, reason: e.message, ...o.facts, ...(o.hresult ? { hresult: o.hresult } : {}) };
  if (o.stage === "attestation") await auditEnrollment(store, req, c, "ca.attestation.error", "failure", { adcsEvent: ADCS_EVENT.attestationError, ...why });
  await auditEnrollment(store, req, c, "ca.request.denied", "denied", { adcsEvent: ADCS_EVENT.requestDenied, ...why });
  return withDetails(e, { adcsEvent: o.stage === "attestation" ? ADCS_EVENT.attestationError : ADCS_EVENT.requestDenied, ...(o.hresult ? { hresult: o.hresult } : {}) });
}

/** Issues the certificate enrollment decided on, with the passed models' policies; its audit entry commits with it. */
export async function issueEnrollment(store: Store, d: EnrollDecision, req: Pick<EnrollRequest, "template">, c: EnrollCaller): Promise<EnrollResult> {
  const { verified, failure, policies, host } = d;
  const passed = d.models?.passed ?? [];
  const cert = await issueFromTemplate(store, {
    template: d.template,
    csr: d.csr,
    names: d.names,
    policies,
    hostName: host,
    attestation: verified
      ? {
          format: verified.format,
          akName: verified.akName.toString("hex"),
          keyName: verified.keyName.toString("hex"),
          freshness: verified.freshness,
          ...(verified.nonceHex ? { nonce: verified.nonceHex } : {}),
          trustModels: passed,
          policies,
          ekHashes: d.models!.ekHashes,
          ekCertHashes: d.models!.ekCertHashes,
        }
      : failure
        ? { outcome: "failed", ...failure, format: d.facts.format, trustModels: [], policies: [] }
        : null,
    now: c.now,
    publicUrl: c.publicUrl,
    commit: async (tx, cert) => {
      if (d.attestationError) await auditEnrollment(tx, req, c, "ca.attestation.error", "failure", { ...d.attestationError, issuedWithoutAttestation: true });
      await auditEnrollment(tx, req, c, "ca.certificate.issue", "success", {
        serial: cert.serial,
        subject: cert.subject,
        host,
        mode: d.mode,
        policies,
        trustModels: passed,
        format: verified?.format ?? null,
        ...(d.facts.enroller ? { enroller: d.facts.enroller } : {}),
        ...(d.facts.requestId !== undefined ? { requestId: d.facts.requestId } : {}),
        ...(d.facts.ekHash ? { ekHash: d.facts.ekHash } : {}),
        ...(d.facts.aikCertSerial ? { aikCertSerial: d.facts.aikCertSerial } : {}),
        ...(failure ? { attestationFailure: failure } : {}),
      });
    },
  });
  return {
    serial: cert.serial,
    certificate: cert.der,
    chain: await caChain(store),
    subject: cert.subject,
    notAfter: cert.notAfter,
    policies,
    trustModels: passed,
    attestation: verified ? { format: verified.format, host: verified.host, akNameHex: verified.akName.toString("hex"), freshness: verified.freshness } : null,
    ...(failure ? { attestationFailure: failure } : {}),
  };
}

export async function enroll(store: Store, req: EnrollRequest, c: EnrollCaller): Promise<EnrollResult> {
  return decideEnrollment(store, req, c, (d) => issueEnrollment(store, d, req, c));
}

/** How many stored nonces one client address may have minted per window (0: no limit). */
export interface NonceLimit {
  source: string;
  limit: number;
  windowMs: number;
}

/** ERR_TOO_MANY_ATTEMPTS once `l.source` has minted more than `l.limit` nonces of `purpose` in the window. */
export async function countNonce(store: Store, purpose: string, l: NonceLimit, now: number): Promise<void> {
  if (l.limit > 0) await store.rateLimits.take(`nonce:${purpose}:${l.source}`, { limit: l.limit, windowMs: l.windowMs, at: now, what: `nonces from ${l.source}` });
}

/** A single-use enrollment nonce: the qualifying data of the TPM2_Certify a request will carry. */
export async function enrollChallenge(store: Store, now: number, limit: NonceLimit): Promise<{ nonce: Buffer; expiresAt: number }> {
  await countNonce(store, ENROLL_NONCE_PURPOSE, limit, now);
  const n = await store.nonces.issue({ purpose: ENROLL_NONCE_PURPOSE, ttlMs: ENROLL_NONCE_TTL_MS, at: now });
  return { nonce: n.value, expiresAt: n.expiresAt };
}
