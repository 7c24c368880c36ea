/**
 * What a CA operator needs to see in a certificate request before deciding on it (tpmtrust ca
 * inspect-request): subject, SANs, key, requested template, OS version, CSP/KSP, the request's own
 * signature, and the Windows key attestation (KAST, verified with its own AIK: signatures and Names,
 * not yet whether the TPM is trusted, which the CMC round trip's EK challenge decides) and the
 * encrypted EK info's recipient. Pure apart from WebCrypto's async signature check.
 */
import { createHash } from "node:crypto";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import { samePublicKey } from "../crypto/keys.js";
import { parseEnvelope } from "../crypto/cms.js";
import { algName } from "../tpm/constants.js";
import { verifyCsrSignature } from "../verify/csr.js";
import { parseKast, verifyIdBinding, verifyKeyAttestation } from "../verify/kast.js";
import { readRequest, requestFacts, type RequestFacts } from "../verify/request.js";
import { CA_OID } from "./oids.js";
import { attributeOctets } from "./evidence.js";

export interface CheckOutcome {
  verified: boolean;
  code?: string;
  reason?: string;
}

export interface InspectedRequest extends RequestFacts {
  format: "pkcs10" | "cmc";
  subject: string;
  sans: { type: string; value: string }[];
  key: { type: string; spkiSha256: string };
  requestSignatureValid: boolean;
  attestation: null | {
    oid: string;
    verified: boolean;
    aik: { name: string; type: string; nameAlg: string } & CheckOutcome;
    key: { name: string; type: string; attributes?: string[]; signatureScheme?: string; extraData: string; matchesRequestKey: boolean } & CheckOutcome;
  };
  ekInfo: null | { recipient: { issuer?: string; serial?: string; subjectKeyIdentifier?: string }; keyEncryptionAlgorithm: string; contentEncryptionAlgorithm: string };
}

function outcome(f: () => unknown): CheckOutcome {
  try {
    f();
    return { verified: true };
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { verified: false, code: e.code, reason: e.message };
  }
}

/** Inspects a PKCS#10 or CMC request; throws ERR_PARSE_* only when the request itself is unusable. */
export async function inspectRequest(input: Uint8Array | string): Promise<InspectedRequest> {
  const req = readRequest(input);
  const { csr } = req;
  const facts = requestFacts(req);
  let requestSignatureValid = true;
  try {
    await verifyCsrSignature(csr);
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    requestSignatureValid = false;
  }
  const kast = attributeOctets(csr, [CA_OID.attestationStatement, CA_OID.attestationStatementWcce]);
  let attestation: InspectedRequest["attestation"] = null;
  if (kast) {
    const st = parseKast(kast.value);
    const aikPub = st.idBinding.public;
    const aik = { name: st.idBinding.name.toString("hex"), type: algName(aikPub.type), nameAlg: algName(aikPub.nameAlg), ...outcome(() => verifyIdBinding(st.idBinding, aikPub)) };
    if (!st.keyAttestation) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", "the KAST statement binds only the AIK (an AIK certificate request)");
    const ka = st.keyAttestation;
    let scheme: { attributes?: string[]; signatureScheme?: string } = {};
    const check = outcome(() => {
      const f = verifyKeyAttestation(ka, aikPub);
      scheme = { attributes: f.attributes, signatureScheme: f.signatureScheme };
    });
    const matchesRequestKey = samePublicKey(csr.publicKey, ka.keyBlob.public);
    const key = { name: ka.keyBlob.name.toString("hex"), type: algName(ka.keyBlob.public.type), ...scheme, extraData: ka.attest.extraData.toString("hex"), matchesRequestKey, ...check };
    attestation = { oid: kast.oid, verified: aik.verified && key.verified && matchesRequestKey, aik, key };
  }
  const ek = attributeOctets(csr, [CA_OID.ekInfo], false);
  let ekInfo: InspectedRequest["ekInfo"] = null;
  if (ek) {
    const env = parseEnvelope(ek.value);
    const { keyEncryptionAlgorithm, ...recipient } = env.recipient;
    ekInfo = { recipient, keyEncryptionAlgorithm, contentEncryptionAlgorithm: env.contentEncryptionAlgorithm };
  }
  return {
    format: req.format,
    subject: csr.subject,
    sans: csr.sans,
    key: { type: csr.keyType, spkiSha256: createHash("sha256").update(csr.spki).digest("hex") },
    ...facts,
    requestSignatureValid,
    attestation,
    ekInfo,
  };
}
