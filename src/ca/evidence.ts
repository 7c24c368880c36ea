/**
 * Key attestation evidence for an enrollment, in two shapes:
 *
 * - tpmtrust's own: the key's TPM2B_PUBLIC and a TPM2_Certify of it by an AK bound to a registered
 *   host, with a service nonce (POST /v1/ca/challenge) as qualifying data;
 * - AD CS's: the KAST statement in the CSR (attribute 1.3.6.1.4.1.311.21.24, or .33 as MS-WCCE's
 *   text has it) with Windows' PCP key attestation ("KADS", src/verify/kast.ts), whose AIK is either
 *   an AK bound to a registered host (tpmtrust's credential activation stood in for AD CS's EK
 *   challenge), or ("kast-ek") an AIK tpmtrust has not bound, proven to live beside the EK of the
 *   request's EK info by the CMC EK challenge (src/ca/cmc.ts); its trust is then that EK's; or
 *   ("kast-aik") an AK tpmtrust bound, vouched for by the AK certificate of its own attestation CA
 *   in the request's AIK info (MS-WCCE 2.2.2.7.15); its trust is then its host's.
 *
 * verifyEvidence answers which host's TPM holds the CSR's key (none for "kast-ek": the TPM is known
 * by its EK only), or throws the first failed check.
 */
import { TpmTrustError } from "../errors.js";
import { samePublicKey } from "../crypto/keys.js";
import type { Store } from "../store/index.js";
import { decodeTpm2bPublic, decodeTpmsAttest, decodeTpmtPublic, decodeTpmtSignature, objectName } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { verifyCertify } from "../verify/certify.js";
import type { ParsedCsr } from "../verify/csr.js";
import type { AikInfo, HardwareKeyInfo } from "../verify/ek-info.js";
import { parseKast, verifyIdBinding, verifyKeyAttestation } from "../verify/kast.js";
import { verifyAkCertificate } from "./ak-ca.js";
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

export type Evidence =
  | { format: "tpmtrust"; evidence: CertifyEvidence }
  | { format: "kast"; oid: string; statement: Buffer }
  /** a KAST with the EK info decrypted from the request; `ekProven` once the client answered the EK challenge */
  | { format: "kast-ek"; oid: string; statement: Buffer; ek: HardwareKeyInfo; ekProven: boolean }
  /** a KAST with the AIK info decrypted from the request */
  | { format: "kast-aik"; oid: string; statement: Buffer; aik: AikInfo };

export interface VerifiedEvidence {
  format: Evidence["format"];
  /** the registered host whose AK signed; null for "kast-ek" */
  host: string | null;
  akName: Buffer;
  keyName: Buffer;
  /** the nonce consumed, hex; absent for a KAST statement without one */
  nonceHex?: string;
  /**
   * "service-nonce": extraData was a fresh single-use nonce of this service; "ek-challenge": the TPM
   * answered this service's single-use EK challenge for the AIK; "none": no freshness (KAST without a nonce)
   */
  freshness: "service-nonce" | "ek-challenge" | "none";
  attributes: string[];
  /** "kast-ek": the EK the trust models judge */
  ek?: HardwareKeyInfo;
  /** "kast-aik": the serial of the AK certificate that vouched for the AIK */
  aikCertSerial?: string;
}

/** The evidence a request carries: the request's own, else a KAST attribute in the CSR; ERR_PARSE_CSR for two KAST attributes or values. */
export function findEvidence(csr: ParsedCsr, evidence: CertifyEvidence | undefined): Evidence | undefined {
  const kast = attributeOctets(csr, [CA_OID.attestationStatement, CA_OID.attestationStatementWcce]);
  if (evidence && kast) throw new TpmTrustError("ERR_VALIDATION", "send either attestation evidence or a KAST statement in the CSR, not both");
  if (evidence) return { format: "tpmtrust", evidence };
  return kast ? { format: "kast", oid: kast.oid, statement: kast.value } : undefined;
}

/**
 * The single value of the one attribute among `oids` (undefined when none): the contents of its
 * OCTET STRING, or with `octet` false the value itself when it is not an OCTET STRING (EK info is
 * sent as a bare CMS structure). ERR_PARSE_CSR for two such attributes or values.
 */
export function attributeOctets(csr: ParsedCsr, oids: string[], octet = true): { oid: string; value: Buffer } | undefined {
  const found = csr.attributes.filter((a) => oids.includes(a.type));
  if (found.length === 0) return undefined;
  if (found.length > 1 || found[0].values.length !== 1) throw new TpmTrustError("ERR_PARSE_CSR", `the CSR carries attribute ${found[0].type} more than once`);
  const v = found[0].values[0];
  return { oid: found[0].type, value: octet || v[0] === 0x04 ? octetString(v) : v };
}

/** The contents of a DER OCTET STRING (an attribute value). */
function octetString(der: Buffer): Buffer {
  if (der.length < 2 || der[0] !== 0x04) throw new TpmTrustError("ERR_PARSE_CSR", "the attribute value is not an OCTET STRING", { offset: 0 });
  let len = der[1];
  let at = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || der.length < 2 + n) throw new TpmTrustError("ERR_PARSE_CSR", "the attribute value's length is malformed", { offset: 1 });
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[2 + i];
    at = 2 + n;
    if (len < 0x80 || (n > 1 && len < 1 << (8 * (n - 1)))) throw new TpmTrustError("ERR_PARSE_CSR", "the attribute value's length is not minimally encoded", { offset: 1 });
  }
  if (at + len !== der.length) throw new TpmTrustError("ERR_PARSE_CSR", "the attribute value's length does not match its value", { offset: 1 });
  return der.subarray(at);
}

async function boundAk(store: Store, akName: Buffer): Promise<{ host: string; public: TpmtPublic }> {
  const ak = await store.aks.get(akName);
  if (!ak) throw new TpmTrustError("ERR_AK_NOT_BOUND", `AK ${akName.toString("hex")} is not bound to a registered host (tpmtrust agent activate)`, { akName: akName.toString("hex") });
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
  if (ev.format === "kast-ek") {
    // the AIK vouches for itself (CertifyCreation of itself, restricted signing key); the EK challenge
    // (MakeCredential over its Name) is what ties it to the EK
    verifyIdBinding(st.idBinding, st.idBinding.public);
    const facts = verifyKeyAttestation(st.keyAttestation, st.idBinding.public);
    requireSameKey(csr, st.keyAttestation.keyBlob.public);
    return {
      format: "kast-ek",
      host: null,
      akName: st.idBinding.name,
      keyName: st.keyAttestation.keyBlob.name,
      freshness: ev.ekProven ? "ek-challenge" : "none",
      attributes: facts.attributes,
      ek: ev.ek,
    };
  }
  let aikCertSerial: string | undefined;
  if (ev.format === "kast-aik") {
    // MS-WCCE 3.2.2.6.2.1.2.5.1: the AIK certificate for the AIKpub; here it must be this service's
    // own, and name the AK the statement's idBinding is for
    if (!ev.aik.certificate) throw new TpmTrustError("ERR_CHAIN_UNTRUSTED", "the AIK info carries no AIK certificate: tpmtrust trusts an AIK only by the certificate its attestation CA issued when the AK was activated");
    const c = await verifyAkCertificate(store, ev.aik.certificate, ev.aik.publicKey, now);
    if (!c.akName.equals(st.idBinding.name)) {
      throw new TpmTrustError("ERR_KEY_MISMATCH", `the AIK certificate ${c.serial} is for AK ${c.akName.toString("hex")} of host ${c.hostName}, not the AIK ${st.idBinding.name.toString("hex")} that signed the KAST statement`, {
        serial: c.serial,
        akName: c.akName.toString("hex"),
      });
    }
    aikCertSerial = c.serial;
  }
  const ak = await boundAk(store, st.idBinding.name);
  verifyIdBinding(st.idBinding, ak.public);
  const facts = verifyKeyAttestation(st.keyAttestation, ak.public);
  requireSameKey(csr, st.keyAttestation.keyBlob.public);
  // Windows leaves extraData empty: freshness for KAST comes from the CMC EK challenge (src/ca/cmc.ts), not a nonce
  return { format: ev.format, host: ak.host, akName: st.idBinding.name, keyName: st.keyAttestation.keyBlob.name, freshness: "none", attributes: facts.attributes, ...(aikCertSerial ? { aikCertSerial } : {}) };
}
