/**
 * ACME device-attest-01 (draft-ietf-acme-device-attest) in its `tpm` attestation format: the
 * client POSTs `{attObj}` = base64url(CBOR {fmt: "tpm", attStmt}) with the WebAuthn TPM statement
 * (WebAuthn §8.3): ver "2.0", alg (COSE), x5c = [AK certificate, …chain], sig (TPMT_SIGNATURE, or
 * the raw signature), certInfo (TPMS_ATTEST of TPM2_Certify), pubArea (TPMT_PUBLIC of the key).
 * certInfo.extraData must be SHA-256 of the challenge's key authorization. Pure.
 */
import { createHash } from "node:crypto";
import { decode } from "cborg";
import { TpmTrustError } from "../errors.js";
import { signatureFromRaw } from "../crypto/signature.js";
import { TPM_ALG, TPM_ST } from "../tpm/constants.js";
import { decodeTpmsAttest, decodeTpmtPublic, decodeTpmtSignature } from "../tpm/structures.js";
import type { TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { verifyCertify, type CertifyFacts } from "./certify.js";

const MAX_ATT_OBJ_BYTES = 32 * 1024;

/** COSE algorithms (RFC 9053 / IANA) a TPM statement may name: the TPM scheme and hash they mean. */
const COSE_ALGS: Record<number, { name: string; sigAlg: number; hash: number }> = {
  [-7]: { name: "ES256", sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256 },
  [-35]: { name: "ES384", sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA384 },
  [-257]: { name: "RS256", sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256 },
  [-258]: { name: "RS384", sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA384 },
  [-37]: { name: "PS256", sigAlg: TPM_ALG.RSAPSS, hash: TPM_ALG.SHA256 },
};

export interface TpmAttStmt {
  ver: string;
  alg: number;
  x5c: Buffer[];
  sig: Buffer;
  certInfo: Buffer;
  pubArea: Buffer;
}

function bad(message: string, field: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_BAD_VALUE", `attObj ${field}: ${message}`, { field });
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const bytes = (v: unknown, field: string, max = 8192): Buffer => {
  if (!(v instanceof Uint8Array) || v.length === 0 || v.length > max) throw bad(`must be a byte string of 1 to ${max} bytes`, field);
  return Buffer.from(v);
};

/** Decodes an attestation object strictly: a CBOR map {fmt: "tpm", attStmt: {...}} with exactly the TPM statement's fields. */
export function decodeAttObj(attObj: Uint8Array): TpmAttStmt {
  if (attObj.length === 0 || attObj.length > MAX_ATT_OBJ_BYTES) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `attObj has 1 to ${MAX_ATT_OBJ_BYTES} bytes, got ${attObj.length}`, { size: attObj.length });
  let v: unknown;
  try {
    v = decode(attObj); // strict: no undefined, no indefinite lengths, string map keys
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `attObj is not CBOR: ${(e as Error).message}`);
  }
  if (!isMap(v)) throw bad("must be a CBOR map", "");
  for (const k of Object.keys(v)) if (!["fmt", "attStmt", "authData"].includes(k)) throw bad(`unexpected key ${JSON.stringify(k)}`, k);
  if (v.fmt !== "tpm") throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `attestation format ${JSON.stringify(v.fmt)} is not supported (only "tpm")`, { field: "fmt" });
  const s = v.attStmt;
  if (!isMap(s)) throw bad("must be a map", "attStmt");
  for (const k of Object.keys(s)) if (!["ver", "alg", "x5c", "sig", "certInfo", "pubArea"].includes(k)) throw bad(`unexpected key ${JSON.stringify(k)} (ECDAA is not supported)`, `attStmt.${k}`);
  if (s.ver !== "2.0") throw bad(`ver must be "2.0", got ${JSON.stringify(s.ver)}`, "attStmt.ver");
  if (typeof s.alg !== "number" || !Number.isInteger(s.alg)) throw bad("alg must be a COSE algorithm number", "attStmt.alg");
  if (!Array.isArray(s.x5c) || s.x5c.length === 0 || s.x5c.length > 4) throw bad("x5c must hold the AK certificate and at most 3 more", "attStmt.x5c");
  return {
    ver: s.ver,
    alg: s.alg,
    x5c: s.x5c.map((c, i) => bytes(c, `attStmt.x5c[${i}]`, 16384)),
    sig: bytes(s.sig, "attStmt.sig"),
    certInfo: bytes(s.certInfo, "attStmt.certInfo"),
    pubArea: bytes(s.pubArea, "attStmt.pubArea"),
  };
}

/** sig as TPMT_SIGNATURE (WebAuthn §8.3), else as the raw signature `alg` names. */
function statementSignature(st: TpmAttStmt, ak: TpmtPublic): TpmtSignature {
  const cose = COSE_ALGS[st.alg];
  if (!cose) throw new TpmTrustError("ERR_SIGNATURE_SCHEME", `COSE algorithm ${st.alg} is not supported (${Object.values(COSE_ALGS).map((a) => a.name).join(", ")})`, { alg: st.alg });
  let sig: TpmtSignature;
  try {
    sig = decodeTpmtSignature(st.sig);
  } catch {
    const scheme = { [TPM_ALG.ECDSA]: "ecdsa", [TPM_ALG.RSASSA]: "rsassa", [TPM_ALG.RSAPSS]: "rsapss" }[cose.sigAlg]!;
    sig = signatureFromRaw(`${scheme}-${cose.hash === TPM_ALG.SHA256 ? "sha256" : "sha384"}`, st.sig, ak);
  }
  if (sig.sigAlg !== cose.sigAlg || !("hash" in sig) || sig.hash !== cose.hash) {
    throw new TpmTrustError("ERR_SIGNATURE_SCHEME", `the signature is not ${cose.name} as alg ${st.alg} says`, { alg: st.alg, sigAlg: sig.sigAlg });
  }
  return sig;
}

/** SHA-256 of the key authorization: what certInfo.extraData must hold. */
export const keyAuthorizationDigest = (keyAuthorization: string): Buffer => createHash("sha256").update(keyAuthorization, "utf8").digest();

/**
 * Verifies the statement with the AK the caller found for x5c[0]: a TPM2_Certify (0x8017) of pubArea
 * signed by the AK, certified Name = Name(pubArea), the key fixedTPM|fixedParent|sensitiveDataOrigin
 * and not restricted, extraData = SHA-256(keyAuthorization).
 */
export function verifyTpmAttStmt(st: TpmAttStmt, o: { ak: TpmtPublic; keyAuthorization: string }): CertifyFacts & { key: TpmtPublic } {
  const key = decodeTpmtPublic(st.pubArea);
  const attest = decodeTpmsAttest(st.certInfo);
  if (attest.type !== TPM_ST.ATTEST_CERTIFY) throw new TpmTrustError("ERR_ATTEST_TYPE", `certInfo must be TPM_ST_ATTEST_CERTIFY (0x8017), got 0x${attest.type.toString(16)}`, { type: attest.type });
  const signature = statementSignature(st, o.ak);
  const facts = verifyCertify({ attestBytes: st.certInfo, attest, signature, ak: o.ak, key, nonce: keyAuthorizationDigest(o.keyAuthorization) });
  return { ...facts, key };
}
