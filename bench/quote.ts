/**
 * Quote verification throughput (parse + AK checks + signature + nonce + PCR digest) against a raw
 * crypto.verify of the same signature, and MakeCredential throughput, for RSA-2048 and P-256.
 * Evidence is made in software with the exact TPM wire formats, so no TPM is measured.
 */
import { constants, createHash, createSign, diffieHellman, generateKeyPairSync, publicEncrypt, randomBytes, verify as rawVerify, type KeyObject } from "node:crypto";
import { compare, type BenchFigure } from "./lib.js";
import { TPM_ALG, TPM_ECC, TPM_GENERATED_VALUE, TPM_ST } from "../src/tpm/constants.js";
import { decodeTpmsAttest, decodeTpmtSignature, encodeTpmsAttest, encodeTpmtSignature, objectName, pcrSelection } from "../src/tpm/structures.js";
import type { TpmtPublic } from "../src/tpm/types.js";
import { verifyQuote } from "../src/verify/quote.js";
import { makeCredential } from "../src/crypto/credential.js";
import { newKeyPair } from "../src/crypto/keygen.js";
import { publicKeyFromTpmt } from "../src/crypto/keys.js";

export const AK_ATTRS = 0x00050072; // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign
const EK_ATTRS = 0x000300b2;
const EK_POLICY = Buffer.from("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa", "hex");

/** A TPMT_PUBLIC of `key`, from newKeyPair (a generateKeyPairSync KeyObject can deadlock its JWK export). */
export function tpmtFromKey(key: KeyObject, attrs: number, authPolicy = Buffer.alloc(0)): TpmtPublic {
  const jwk = key.export({ format: "jwk" });
  if (jwk.kty === "RSA") {
    const restricted = (attrs & 0x10000) !== 0 && (attrs & 0x20000) !== 0;
    return {
      type: TPM_ALG.RSA,
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: attrs,
      authPolicy,
      parameters: {
        symmetric: restricted ? { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB } : { algorithm: TPM_ALG.NULL },
        scheme: restricted ? { scheme: TPM_ALG.NULL } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
        keyBits: 2048,
        exponent: 0,
      },
      unique: Buffer.from(jwk.n!, "base64url"),
    };
  }
  const restricted = (attrs & 0x20000) !== 0;
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: attrs,
    authPolicy,
    parameters: {
      symmetric: restricted ? { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB } : { algorithm: TPM_ALG.NULL },
      scheme: restricted ? { scheme: TPM_ALG.NULL } : { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
      curveID: TPM_ECC.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL },
    },
    unique: { x: Buffer.from(jwk.x!, "base64url"), y: Buffer.from(jwk.y!, "base64url") },
  };
}

function makeQuote(kind: "rsa" | "ecc") {
  const { privateKey, publicKey } = newKeyPair(kind === "rsa" ? "rsa-2048" : "ecdsa-p256");
  const ak = tpmtFromKey(publicKey, AK_ATTRS);
  const pcrs: Record<number, Buffer> = {};
  for (const i of [0, 1, 2, 3, 4, 5, 6, 7]) pcrs[i] = createHash("sha256").update(`pcr${i}`).digest();
  const nonce = randomBytes(32);
  const attestBytes = encodeTpmsAttest({
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST.ATTEST_QUOTE,
    qualifiedSigner: objectName(ak),
    extraData: nonce,
    clockInfo: { clock: 123456n, resetCount: 1, restartCount: 0, safe: true },
    firmwareVersion: 0x2019102300163636n,
    attested: { pcrSelect: [pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 3, 4, 5, 6, 7])], pcrDigest: createHash("sha256").update(Buffer.concat(Object.values(pcrs))).digest() },
  });
  const raw = createSign("sha256").update(attestBytes).sign(kind === "rsa" ? privateKey : { key: privateKey, dsaEncoding: "ieee-p1363" });
  const sigBytes = encodeTpmtSignature(
    kind === "rsa"
      ? { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: raw }
      : { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: raw.subarray(0, 32), s: raw.subarray(32) },
  );
  return { ak, attestBytes, sigBytes, raw, nonce, pcrs: { sha256: pcrs } };
}

export async function run(): Promise<BenchFigure[]> {
  const out: BenchFigure[] = [];
  for (const kind of ["rsa", "ecc"] as const) {
    const q = makeQuote(kind);
    const full = () => {
      const attest = decodeTpmsAttest(q.attestBytes);
      const signature = decodeTpmtSignature(q.sigBytes);
      verifyQuote({ attestBytes: q.attestBytes, attest, signature, ak: q.ak, nonce: q.nonce, pcrs: q.pcrs });
    };
    // the baseline verifies with the very KeyObject the verifier uses, so only the verifier's own work differs
    const akKey = publicKeyFromTpmt(q.ak);
    const verifyOpts = kind === "rsa" ? akKey : { key: akKey, dsaEncoding: "ieee-p1363" as const };
    const raw = () => {
      if (!rawVerify("sha256", q.attestBytes, verifyOpts, q.raw)) throw new Error("raw verify failed");
    };
    full(); // fail loudly before measuring if the evidence does not verify
    out.push(
      await compare(`quote verification ${kind === "rsa" ? "RSA-2048" : "ECC P-256"} (parse+signature+nonce+PCR digest)`, full, "crypto.verify of the same signature", raw, {
        goal: "ratio >= 0.8",
        runs: 7,
      }),
    );
  }
  for (const kind of ["rsa", "ecc"] as const) {
    const { publicKey } = newKeyPair(kind === "rsa" ? "rsa-2048" : "ecdsa-p256");
    const ek = tpmtFromKey(publicKey, EK_ATTRS, EK_POLICY);
    const name = objectName(ek);
    const secret = randomBytes(32);
    // the baseline is the one asymmetric step MakeCredential cannot avoid: OAEP to the RSA EK, or an ephemeral key and ECDH with the ECC EK
    const asymmetric =
      kind === "rsa"
        ? () => publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, secret)
        : () => diffieHellman({ privateKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, publicKey });
    out.push(
      await compare(`MakeCredential to ${kind === "rsa" ? "RSA-2048" : "ECC P-256"} EK`, () => makeCredential(ek, name, secret), kind === "rsa" ? "RSA-OAEP encryption to the same EK" : "ephemeral P-256 key + ECDH with the same EK", asymmetric),
    );
  }
  return out;
}
