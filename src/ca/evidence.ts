/**
 * Key attestation evidence for an enrolment, in two shapes:
 *
 * - tpmtrust's own: the key's TPM2B_PUBLIC and a TPM2_Certify of it by an AK bound to a registered
 *   host, with a service nonce (POST /v1/ca/challenge) as qualifying data;
 * - AD CS's: the KAST statement in the CSR (attribute 1.3.6.1.4.1.311.21.24, or .33 as MS-WCCE's
 *   text has it), whose AIK must be an AK bound to a registered host (tpmtrust's credential
 *   activation stands in for AD CS's EK challenge round trip, which is not implemented).
 *
 * verifyEvidence answers which host's TPM holds the CSR's key, or throws the first failed check.
 */
import { TpmTrustError } from "../errors.js";
import { samePublicKey } from "../crypto/keys.js";
import type { Store } from "../store/index.js";
import { decodeTpm2bPublic, decodeTpmsAttest, decodeTpmtPublic, decodeTpmtSignature, objectName } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { verifyCertify } from "../verify/certify.js";
import type { ParsedCsr } from "../verify/csr.js";
import { parseKast, verifyCreationBinding } from "../verify/kast.js";
import { CA_OID } from "./oids.js";

/** Purpose of the nonces POST /v1/ca/challenge hands out. */
export const ENROLL_NONCE_PURPOSE = "ca.enroll";
export const ENROLL_NONCE_TTL_MS = 5 * 60_000;

/** tpmtrust's evidence, as decoded from the request (binary fields as sent). */
export interface CertifyEvidence {
  /** TPM2B_PUBLIC of the certified key */
  keyPublic: Buffer;
  /** TPMS_ATTEST of TPM2_Certify */
  attest: Buffer;
  /** TPMT_SIGNATURE over attest */
  signature: Buffer;
  /** Name of the AK that signed (hex) */
  akNameHex: string;
}

export type Evidence = { format: "tpmtrust"; evidence: CertifyEvidence } | { format: "kast"; oid: string; statement: Buffer };

export interface VerifiedEvidence {
  format: Evidence["format"];
  host: string;
  akName: Buffer;
  keyName: Buffer;
  /** the nonce consumed, hex; absent for a KAST statement without one */
  nonceHex?: string;
  /** "service-nonce": extraData was a fresh single-use nonce of this service; "none": no freshness (KAST without a nonce) */
  freshness: "service-nonce" | "none";
  attributes: string[];
}

/** The evidence a request carries: the request's own, else a KAST attribute in the CSR; ERR_PARSE_CSR for two KAST attributes or values. */
export function findEvidence(csr: ParsedCsr, evidence: CertifyEvidence | undefined): Evidence | undefined {
  const kast = csr.attributes.filter((a) => a.type === CA_OID.attestationStatement || a.type === CA_OID.attestationStatementWcce);
  if (evidence && kast.length > 0) throw new TpmTrustError("ERR_VALIDATION", "send either attestation evidence or a KAST statement in the CSR, not both");
  if (evidence) return { format: "tpmtrust", evidence };
  if (kast.length === 0) return undefined;
  if (kast.length > 1 || kast[0].values.length !== 1) throw new TpmTrustError("ERR_PARSE_CSR", "the CSR carries more than one attestation statement");
  return { format: "kast", oid: kast[0].type, statement: octetString(kast[0].values[0]) };
}

/** The contents of a DER OCTET STRING (the KAST attribute value). */
function octetString(der: Buffer): Buffer {
  if (der.length < 2 || der[0] !== 0x04) throw new TpmTrustError("ERR_PARSE_CSR", "the attestation statement attribute is not an OCTET STRING", { offset: 0 });
  let len = der[1];
  let at = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || der.length < 2 + n) throw new TpmTrustError("ERR_PARSE_CSR", "the attestation statement's length is malformed", { offset: 1 });
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[2 + i];
    at = 2 + n;
    if (len < 0x80 || (n > 1 && len < 1 << (8 * (n - 1)))) throw new TpmTrustError("ERR_PARSE_CSR", "the attestation statement's length is not minimally encoded", { offset: 1 });
  }
  if (at + len !== der.length) throw new TpmTrustError("ERR_PARSE_CSR", "the attestation statement's length does not match its value", { offset: 1 });
  return der.subarray(at);
}

async function boundAk(store: Store, akName: Buffer): Promise<{ host: string; public: TpmtPublic }> {
  const ak = await store.aks.get(akName);
  if (!ak) throw new TpmTrustError("ERR_AK_NOT_BOUND", `AK ${akName.toString("hex")} is not bound to a registered host (tpmtrust agent register)`, { akName: akName.toString("hex") });
  return { host: ak.hostName, public: decodeTpmtPublic(ak.public) };
}

function requireSameKey(csr: ParsedCsr, key: TpmtPublic): void {
  if (!samePublicKey(csr.publicKey, key)) throw new TpmTrustError("ERR_KEY_MISMATCH", "the CSR's public key is not the key the TPM certified");
}

/**
 * Verifies evidence for `csr`. Order: structure → AK bound to a host → signature, certified Name,
 * key attributes (fixedTPM, fixedParent, sensitiveDataOrigin, not restricted) → CSR key = certified
 * key → nonce (consumed once; unknown, expired or reused nonces fail).
 */
export async function verifyEvidence(store: Store, ev: Evidence, csr: ParsedCsr, now: number): Promise<VerifiedEvidence> {
  if (ev.format === "tpmtrust") {
    const e = ev.evidence;
    if (!/^[0-9a-f]{68,132}$/i.test(e.akNameHex)) throw new TpmTrustError("ERR_VALIDATION", "akNameHex must be an AK Name (hex)", { field: "akNameHex" });
    const key = decodeTpm2bPublic(e.keyPublic);
    const attest = decodeTpmsAttest(e.attest);
    const signature = decodeTpmtSignature(e.signature);
    const akName = Buffer.from(e.akNameHex, "hex");
    const ak = await boundAk(store, akName);
    const facts = verifyCertify({ attestBytes: e.attest, attest, signature, ak: ak.public, key });
    if (facts.type !== "certify") throw new TpmTrustError("ERR_ATTEST_TYPE", "key attestation evidence must be TPM2_Certify (0x8017)", { type: attest.type });
    requireSameKey(csr, key);
    await store.nonces.consume({ value: attest.extraData, purpose: ENROLL_NONCE_PURPOSE, at: now });
    return { format: "tpmtrust", host: ak.host, akName, keyName: objectName(key), nonceHex: attest.extraData.toString("hex"), freshness: "service-nonce", attributes: facts.attributes };
  }
  const st = parseKast(ev.statement);
  if (!st.keyAttestation) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", "the KAST statement binds only the AIK (an AIK certificate request); tpmtrust certifies AKs by credential activation instead");
  const ak = await boundAk(store, st.idBinding.name);
  verifyCreationBinding(st.idBinding, ak.public, { isAik: true });
  const facts = verifyCreationBinding(st.keyAttestation, ak.public);
  requireSameKey(csr, st.keyAttestation.public);
  const extra = st.keyAttestation.attest.extraData;
  if (extra.length > 0) await store.nonces.consume({ value: extra, purpose: ENROLL_NONCE_PURPOSE, at: now });
  return {
    format: "kast",
    host: ak.host,
    akName: st.idBinding.name,
    keyName: st.keyAttestation.name,
    ...(extra.length > 0 ? { nonceHex: extra.toString("hex") } : {}),
    freshness: extra.length > 0 ? "service-nonce" : "none",
    attributes: facts.attributes,
  };
}
