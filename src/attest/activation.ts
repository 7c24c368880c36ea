/**
 * AK activation by credential activation (TPM 2.0 Part 1 §24): the agent sends its EK (with
 * certificates) and a new AK; the service finds the registered host by the EK's Name, checks the EK's
 * trust under the host's policy version and the AK's attributes, and answers with MakeCredential of a
 * fresh 32-byte secret to the EK over the AK's Name. Only a TPM that holds both that EK and an AK
 * with that Name recovers the secret (TPM2_ActivateCredential); presenting it binds the AK to the
 * host. One try: the first answer spends the activation, right or wrong. Only the secret's SHA-256 is
 * stored. Every decision is audited.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { TpmTrustError, isAuditableFailure, isTpmTrustError } from "../errors.js";
import { makeCredential } from "../crypto/credential.js";
import type { Store } from "../store/index.js";
import { TPM_ALG, algName } from "../tpm/constants.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import { checkAkAttributes } from "../verify/keyattrs.js";
import { loadCertificates } from "../verify/ek/index.js";
import { attestationCa, recordAkCertificate, signAkCertificate, type AttestationCa, type SignedAkCertificate } from "../ca/ak-ca.js";
import { decodePublic } from "./identity.js";
import { countFromSource, type SourceLimit } from "./limits.js";
import { evaluateEk, requireForPolicy } from "../trust/trust.js";
import { requireEnabled, requireHostTrusted } from "../trust/host-trust.js";
import { admitByEkCertChain } from "./admission.js";
import { admissionOf, type Admission } from "./settings.js";

export const ACTIVATION_TTL_MS = 5 * 60_000;
const SECRET_BYTES = 32;
/** AK Names must use a hash at least as strong as SHA-256. */
const AK_NAME_ALGS = new Set<number>([TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]);

export interface StartActivation {
  /** TPM2B_PUBLIC of the EK */
  ekPublic: Buffer;
  /** EK certificates (DER, as read from NV), judged with the one stored at registration */
  ekCertificates?: readonly Buffer[];
  /** intermediates for path building */
  intermediates?: readonly Buffer[];
  /** TPM2B_PUBLIC of the AK */
  akPublic: Buffer;
}

export interface ActivationChallenge {
  activationId: string;
  /** TPM2B_ID_OBJECT */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET */
  encryptedSecret: Buffer;
  akName: Buffer;
  expiresAt: number;
}

export interface ActivationResult {
  host: string;
  akName: Buffer;
  /** DER, EKU 2.23.133.8.3, from the attestation CA */
  akCertificate?: Buffer;
  /** why no certificate was issued (the AK is bound all the same) */
  akCertificateError?: string;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();

/** Step 1: checks and the credential challenge. `limit`: starts per client address (limits.ts), counted first. */
export async function startActivation(store: Store, input: StartActivation, o: { now: number; ttlMs?: number; limit?: SourceLimit; admission?: Admission }): Promise<ActivationChallenge> {
  if (o.limit) await countFromSource(store, "activation", o.limit, { action: "ak.activation.start", subject: null, at: o.now });
  let actor = "anonymous";
  let subject: string | null = null;
  const details: Record<string, unknown> = {};
  try {
    const ek = decodePublic(input.ekPublic, "ekPublic");
    const ak = decodePublic(input.akPublic, "akPublic");
    subject = ak.name.toString("hex");
    details.ekName = ek.name.toString("hex");
    const intermediates = (input.intermediates ?? []).flatMap((c) => loadCertificates(c));
    let host = await store.hosts.findByEk(ek.name);
    if (!host) {
      const admission = await admissionOf(store, o.admission);
      if (admission.mode !== "ek-cert-chain") throw new TpmTrustError("ERR_NOT_FOUND", "this EK belongs to no registered host (register it with tpmtrust hosts add)", { ekName: details.ekName });
      host = await admitByEkCertChain(store, { ek, ekCerts: input.ekCertificates ?? [], intermediates }, { hardwareClass: admission.defaultClass!, now: o.now });
      details.admitted = true;
    }
    actor = `host:${host.name}`;
    requireEnabled(host);
    const stored = host.eks.find((e) => e.name.equals(ek.name))!.cert;
    const ekCerts = [...(input.ekCertificates ?? []), ...(stored ? [stored] : [])];
    const d = await evaluateEk(store, { ekPublic: ek.public, ekCerts, intermediates }, new Date(o.now));
    details.ekTrustMethod = requireForPolicy(d, host.policyVersion);
    details.policyVersion = host.policyVersion;

    checkAkAttributes(ak.public);
    if (!AK_NAME_ALGS.has(ak.public.nameAlg)) {
      throw new TpmTrustError("ERR_KEY_TOO_WEAK", `the AK's nameAlg ${algName(ak.public.nameAlg)} is weaker than SHA-256`, { nameAlg: ak.public.nameAlg });
    }
    const bound = await store.aks.get(ak.name);
    if (bound) throw new TpmTrustError("ERR_CONFLICT", `this AK is already bound${bound.hostName === host.name ? " to this host" : " to another host"}`);

    const secret = randomBytes(SECRET_BYTES);
    const blob = makeCredential(ek.public, ak.name, secret);
    // the pending activation and its audit entry commit together
    const a = await store.transaction(async (tx) => {
      const a = await tx.activations.create({
        hostName: host.name,
        akName: ak.name,
        akPublic: ak.publicArea,
        ekName: ek.name,
        secretHash: sha256(secret),
        ttlMs: o.ttlMs ?? ACTIVATION_TTL_MS,
        at: o.now,
      });
      await tx.audit.append({ actor, action: "ak.activation.start", subject, outcome: "success", details: { ...details, activationId: a.id, expiresAt: a.expiresAt }, at: o.now });
      return a;
    });
    return { activationId: a.id, credentialBlob: blob.credentialBlob, encryptedSecret: blob.secret, akName: ak.name, expiresAt: a.expiresAt };
  } catch (e) {
    if (isAuditableFailure(e)) {
      await store.audit.append({ actor, action: "ak.activation.start", subject, outcome: "failure", details: { ...details, code: e.code, reason: e.message }, at: o.now });
    }
    throw e;
  }
}

/**
 * Step 2: the secret the TPM recovered. Right: the AK is bound to the host and certified by the
 * attestation CA. Wrong: ERR_ACTIVATION_FAILED, and the activation is spent. Unknown, spent or
 * expired: ERR_NOT_FOUND.
 */
export async function completeActivation(store: Store, id: string, secret: Buffer, o: { now: number }): Promise<ActivationResult> {
  let actor = "anonymous";
  let subject: string | null = null;
  try {
    const a = await store.activations.getPending(id, o.now);
    actor = `host:${a.hostName}`;
    subject = a.akName.toString("hex");
    // spend it before judging the answer: exactly one answer is ever judged
    if (!(await store.activations.complete(id, o.now))) throw new TpmTrustError("ERR_NOT_FOUND", "no pending activation with this id (unknown, completed or expired)");
    const ok = secret.length === SECRET_BYTES && timingSafeEqual(sha256(secret), a.secretHash);
    if (!ok) {
      await store.activations.recordFailure(id);
      throw new TpmTrustError("ERR_ACTIVATION_FAILED", "the secret is not the credential: the AK and EK are not in one TPM, or the answer is wrong; the activation is spent, start again");
    }
    // trust withdrawn (host disabled, EK no longer trusted) since step 1 binds nothing
    const host = await store.hosts.get(a.hostName);
    if (!host) throw new TpmTrustError("ERR_NOT_FOUND", `host ${a.hostName} is no longer registered`);
    await requireHostTrusted(store, host, o.now);
    // the certificate is a convenience on top of the binding the TPM proved: signed before the
    // transaction, and if it cannot be signed the AK is bound without one
    let signed: SignedAkCertificate | undefined;
    let ca: AttestationCa | undefined;
    let certError: string | undefined;
    try {
      ca = await attestationCa(store, o.now);
      signed = await signAkCertificate(ca, { hostName: a.hostName, akPublic: decodeTpmtPublic(a.akPublic), now: o.now });
    } catch (e) {
      if (!isTpmTrustError(e)) throw e;
      certError = `${e.code}: ${e.message}`;
    }
    // the binding, its certificate and its audit entry commit together or not at all
    const akCertificate = await store.transaction(async (tx) => {
      await tx.aks.bind({ hostName: a.hostName, name: a.akName, public: a.akPublic, at: o.now });
      const der = signed && ca ? await recordAkCertificate(tx, ca, signed, { hostName: a.hostName, akName: a.akName, now: o.now }) : undefined;
      if (der) await tx.aks.setCert(a.akName, der);
      await tx.audit.append({
        actor,
        action: "ak.activation.complete",
        subject,
        outcome: "success",
        details: { activationId: id, host: a.hostName, akCertificate: der !== undefined, ...(certError ? { akCertificateError: certError } : {}) },
        at: o.now,
      });
      return der;
    });
    return { host: a.hostName, akName: a.akName, ...(akCertificate ? { akCertificate } : { akCertificateError: certError! }) };
  } catch (e) {
    if (isAuditableFailure(e)) {
      await store.audit.append({ actor, action: "ak.activation.complete", subject, outcome: "failure", details: { activationId: id, code: e.code, reason: e.message }, at: o.now });
    }
    throw e;
  }
}
