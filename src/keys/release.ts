/**
 * Release to the TPM: a secret (a data key) wrapped so that only the attested host's TPM can
 * unwrap it, as a duplication blob of a sealed data object for TPM2_Import under the host's SRK.
 * The secret never crosses the wire in clear.
 *
 * Why the SRK is the attested TPM's: the host sends the SRK public with a TPM2_Certify of it by an
 * AK bound to the host (bound by credential activation to the host's registered EK). A restricted
 * AK only signs TPMS_ATTEST the TPM itself produced, so the certified Name is an object loaded in
 * that TPM; fixedTPM|fixedParent|sensitiveDataOrigin say it was made there and cannot leave. The
 * certification needs no nonce: replaying an old one only yields blobs for that same TPM.
 *
 *   verifySrk: TPM2B_PUBLIC (restricted decrypt, not sign, fixedTPM…) + TPMS_ATTEST + TPMT_SIGNATURE
 *              by one of the host's bound AKs, certified Name = Name(SRK)
 *   secret:    the wrapped key the host sent (opened like /decrypt), else a new one from the key
 *              server, wrapped by the provider's current version for the host to keep
 *   blob:      sealedDataObject(secret) duplicated to the SRK (outer wrap, seed label "DUPLICATE")
 */
import { createDuplicate, sealedDataObject } from "../crypto/duplicate.js";
import { TpmTrustError } from "../errors.js";
import type { Host, Store } from "../store/index.js";
import { TPMA_OBJECT } from "../tpm/constants.js";
import { decodeTpm2bPublic, decodeTpmsAttest, decodeTpmtPublic, decodeTpmtSignature, objectName } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { verifyCertify } from "../verify/certify.js";
import type { HostGrant } from "./authorize.js";
import { checkDataKeySize, DATA_KEY_SIZES, openEnvelope, sealCurrent, serverOf } from "./operations.js";

export interface SrkProof {
  /** TPM2B_PUBLIC of the storage key */
  public: Buffer;
  /** TPMS_ATTEST of TPM2_Certify(SRK) by a bound AK */
  attest: Buffer;
  /** TPMT_SIGNATURE over it */
  signature: Buffer;
}

/** Largest secret a sealed data object holds (MAX_SYM_DATA). */
const MAX_SEALED = 128;

const has = (p: TpmtPublic, f: number) => (p.objectAttributes & f) !== 0;

/** The SRK the proof shows to be a storage key of the host's TPM; returns it and the AK that certified it. */
export async function verifySrk(store: Store, host: Host, proof: SrkProof): Promise<{ srk: TpmtPublic; akName: Buffer }> {
  const srk = decodeTpm2bPublic(proof.public);
  if (!has(srk, TPMA_OBJECT.restricted) || !has(srk, TPMA_OBJECT.decrypt) || has(srk, TPMA_OBJECT.sign)) {
    throw new TpmTrustError("ERR_KEY_NOT_STORAGE", "the SRK must be a restricted decryption key that cannot sign", { objectAttributes: srk.objectAttributes });
  }
  const attest = decodeTpmsAttest(proof.attest);
  const signature = decodeTpmtSignature(proof.signature);
  for (const ak of await store.aks.listForHost(host.name)) {
    try {
      verifyCertify({ attestBytes: proof.attest, attest, signature, ak: decodeTpmtPublic(ak.public), key: srk, allowRestricted: true });
      return { srk, akName: ak.name };
    } catch (e) {
      if (!(e instanceof TpmTrustError && (e.code === "ERR_SIGNATURE_INVALID" || e.code === "ERR_SIGNATURE_SCHEME"))) throw e;
    }
  }
  throw new TpmTrustError("ERR_AK_NOT_BOUND", `the SRK certification is not signed by an AK bound to host ${host.name}`);
}

export interface Release {
  keyVersion: number;
  /** the secret wrapped by the provider (what the host keeps to ask for it again) */
  wrappedKey: Buffer;
  srkName: Buffer;
  /** TPM2_Import parameters, each with its size field */
  duplicate: { public: Buffer; duplicate: Buffer; inSymSeed: Buffer; name: Buffer };
}

export async function release(store: Store, g: HostGrant, o: { srk: SrkProof; wrappedKey?: Buffer; size?: number; context?: Buffer; now: number }): Promise<Release> {
  const fail = async (e: unknown) => {
    const code = e instanceof TpmTrustError ? e.code : "ERR_INTERNAL";
    await store.audit.append({ actor: g.actor, action: "keys.release", subject: g.provider.name, outcome: "failure", details: { host: g.host.name, code }, at: o.now });
    return e;
  };
  try {
    if (o.wrappedKey && o.size !== undefined) throw new TpmTrustError("ERR_VALIDATION", "give wrappedKey (release that key) or size (a new key), not both");
    const { srk, akName } = await verifySrk(store, g.host, o.srk);
    let secret: Buffer;
    let wrappedKey: Buffer;
    let keyVersion: number;
    if (o.wrappedKey) {
      ({ plaintext: secret, version: keyVersion } = await openEnvelope(store, g, o.wrappedKey, o.context));
      if (secret.length > MAX_SEALED) throw new TpmTrustError("ERR_VALIDATION", `a released secret has at most ${MAX_SEALED} bytes; this one has ${secret.length}`);
      wrappedKey = o.wrappedKey;
    } else {
      const size = o.size ?? DATA_KEY_SIZES.default;
      checkDataKeySize(size);
      secret = await serverOf(store, g).randomBytes(size);
      ({ envelope: wrappedKey, version: keyVersion } = await sealCurrent(store, g, secret, o.context));
    }
    const sealed = sealedDataObject(secret);
    secret.fill(0);
    const duplicate = createDuplicate(srk, sealed.public, sealed.sensitive);
    sealed.sensitive.sensitive.fill(0);
    const srkName = objectName(srk);
    await store.audit.append({
      actor: g.actor,
      action: "keys.release",
      subject: g.provider.name,
      outcome: "success",
      details: { host: g.host.name, clusters: g.clusters, jti: g.jti, version: keyVersion, srkName, akName, newKey: !o.wrappedKey },
      at: o.now,
    });
    return { keyVersion, wrappedKey, srkName, duplicate };
  } catch (e) {
    throw await fail(e);
  }
}
