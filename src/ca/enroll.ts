/**
 * Certificate enrolment with TPM key attestation (AD CS semantics):
 *
 *   template → parse CSR → CSR signature → template rules → evidence (tpmtrust certify or KAST)
 *   → verifyEvidence (AK bound, signature, Name, key attributes, CSR key = certified key, nonce)
 *   → trust models (ek-key / ek-cert / user-credentials) → issue with the passed models' OIDs
 *
 * `none` ignores evidence; `required-if-capable` issues without attestation policies when there is
 * no evidence but rejects evidence that fails; `required` rejects every request without valid
 * attestation. Failures are audited like AD CS: `ca.attestation.error` (event 22, the evidence could
 * not be processed) and `ca.request.denied` (event 53), each with the reason code.
 */
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import type { Store } from "../store/index.js";
import { parseCsr, verifyCsrSignature } from "../verify/csr.js";
import { caChain } from "./authority.js";
import { ENROLL_NONCE_PURPOSE, ENROLL_NONCE_TTL_MS, findEvidence, verifyEvidence, type CertifyEvidence, type VerifiedEvidence } from "./evidence.js";
import { checkRequest, issueFromTemplate } from "./issue.js";
import { HRESULT_INVALID_EK, HRESULT_KEY_ATTESTATION, POLICY_OF, type TrustModel } from "./oids.js";
import { getTemplate } from "./templates.js";
import { evaluateTrustModels, type TrustModelResult } from "./trust-models.js";

export interface EnrollRequest {
  template: string;
  /** DER or PEM */
  csr: Uint8Array | string;
  evidence?: CertifyEvidence;
}

export interface EnrollCaller {
  /** audit actor */
  actor: string;
  /** an admin API token authenticated the request (the `user-credentials` trust model) */
  admin: boolean;
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
  attestation: { format: VerifiedEvidence["format"]; host: string; akNameHex: string; freshness: VerifiedEvidence["freshness"] } | null;
}

/** AD CS event IDs tpmtrust mirrors in its audit log. */
export const ADCS_EVENT = { attestationError: 22, requestDenied: 53 } as const;

function withDetails(e: TpmTrustError, details: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError(e.code, e.message, { ...(e.details ?? {}), ...details });
}

export async function enroll(store: Store, req: EnrollRequest, c: EnrollCaller): Promise<EnrollResult> {
  const audit = (action: string, outcome: "success" | "failure" | "denied", details: Record<string, unknown>) =>
    store.audit.append({ actor: c.actor, action, subject: req.template, outcome, details, at: c.now });
  let stage: "request" | "attestation" = "request";
  const facts: Record<string, unknown> = {};
  try {
    const template = await getTemplate(store, req.template);
    const mode = template.keyAttestation.mode;
    facts.mode = mode;
    const csr = parseCsr(req.csr);
    facts.subject = csr.subject;
    await verifyCsrSignature(csr);
    checkRequest(template, csr);

    let verified: VerifiedEvidence | undefined;
    let models: TrustModelResult | undefined;
    const evidence = mode === "none" ? undefined : findEvidence(csr, req.evidence);
    if (evidence) {
      stage = "attestation";
      facts.format = evidence.format;
      verified = await verifyEvidence(store, evidence, csr, c.now);
      facts.host = verified.host;
      facts.akName = verified.akName.toString("hex");
      stage = "request";
      models = await evaluateTrustModels(store, verified.host, template.keyAttestation.trustModels, { userVouched: c.admin, now: c.now });
      facts.trustModels = models.outcomes;
      if (models.passed.length === 0) {
        const ekCertFailed = models.outcomes["ek-cert"] && !models.outcomes["ek-cert"].passed;
        throw new TpmTrustError(
          "ERR_EK_NOT_TRUSTED",
          `the TPM's EK is not trusted under template ${template.name}'s trust models (${template.keyAttestation.trustModels.join(", ")}): ${Object.entries(models.outcomes)
            .map(([m, o]) => `${m}: ${o!.reason}`)
            .join("; ")}`,
          { hresult: ekCertFailed ? HRESULT_INVALID_EK : HRESULT_KEY_ATTESTATION, trustModels: models.outcomes, host: verified.host },
        );
      }
    } else if (mode === "required") {
      throw new TpmTrustError("ERR_ATTESTATION_REQUIRED", `template ${template.name} requires key attestation and the request carries none (AD CS CERTSRV_E_KEY_ATTESTATION ${HRESULT_KEY_ATTESTATION})`, {
        hresult: HRESULT_KEY_ATTESTATION,
      });
    }

    const passed = models?.passed ?? [];
    const policies = template.keyAttestation.includeIssuancePolicies ? passed.map((m) => POLICY_OF[m]) : [];
    const cert = await issueFromTemplate(store, {
      template,
      csr,
      policies,
      hostName: verified?.host ?? null,
      attestation: verified
        ? {
            format: verified.format,
            akName: verified.akName.toString("hex"),
            keyName: verified.keyName.toString("hex"),
            freshness: verified.freshness,
            ...(verified.nonceHex ? { nonce: verified.nonceHex } : {}),
            trustModels: passed,
            policies,
            ekHashes: models!.ekHashes,
            ekCertHashes: models!.ekCertHashes,
          }
        : null,
      now: c.now,
      publicUrl: c.publicUrl,
    });
    const result: EnrollResult = {
      serial: cert.serial,
      certificate: cert.der,
      chain: await caChain(store),
      subject: cert.subject,
      notAfter: cert.notAfter,
      policies,
      trustModels: passed,
      attestation: verified ? { format: verified.format, host: verified.host, akNameHex: verified.akName.toString("hex"), freshness: verified.freshness } : null,
    };
    await audit("ca.certificate.issue", "success", { serial: cert.serial, subject: cert.subject, host: verified?.host ?? null, mode, policies, trustModels: passed, format: verified?.format ?? null });
    return result;
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    const hresult = (e.details?.hresult as string | undefined) ?? (stage === "attestation" || e.code === "ERR_ATTESTATION_REQUIRED" ? HRESULT_KEY_ATTESTATION : undefined);
    const why = { code: e.code, reason: e.message, ...facts, ...(hresult ? { hresult } : {}) };
    if (stage === "attestation") await audit("ca.attestation.error", "failure", { adcsEvent: ADCS_EVENT.attestationError, ...why });
    await audit("ca.request.denied", "denied", { adcsEvent: ADCS_EVENT.requestDenied, ...why });
    throw withDetails(e, { adcsEvent: stage === "attestation" ? ADCS_EVENT.attestationError : ADCS_EVENT.requestDenied, ...(hresult ? { hresult } : {}) });
  }
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

/** A single-use enrolment nonce: the qualifying data of the TPM2_Certify a request will carry. */
export async function enrollChallenge(store: Store, now: number, limit: NonceLimit): Promise<{ nonce: Buffer; expiresAt: number }> {
  await countNonce(store, ENROLL_NONCE_PURPOSE, limit, now);
  const n = await store.nonces.issue({ purpose: ENROLL_NONCE_PURPOSE, ttlMs: ENROLL_NONCE_TTL_MS, at: now });
  return { nonce: n.value, expiresAt: n.expiresAt };
}
