/**
 * The TPM's side of secret sharing and wrapping, written for tests from the spec (Part 1 §23.3,
 * §24): recovers a seed with the protector's private key and opens an outer/inner wrap. It lets
 * tests round-trip combinations swtpm cannot create (e.g. SHA-512 EKs); swtpm tests check the rest.
 * Also software EKs (standard EK attributes and policy) with their private keys.
 */
import assert from "node:assert/strict";
import { constants, createDecipheriv, generateKeyPairSync, createHmac, createPrivateKey, createPublicKey, diffieHellman, privateDecrypt, type KeyObject } from "node:crypto";
import { kdfa, kdfe, hashAlgorithm } from "../../src/crypto/kdf.js";
import { ECC_CURVES, TPM_ALG, TPM_ECC } from "../../src/tpm/constants.js";
import { decodeTpmsEccPoint } from "../../src/tpm/structures.js";
import type { EccPublic, RsaPublic, TpmtPublic } from "../../src/tpm/types.js";

export function recoverSeed(protector: TpmtPublic, privateKey: KeyObject, encryptedSecret: Buffer, label: string): Buffer {
  const { node, size } = hashAlgorithm(protector.nameAlg);
  if (protector.type === TPM_ALG.RSA) {
    const s = protector.parameters.scheme;
    const oaepHash = s.scheme === TPM_ALG.OAEP ? hashAlgorithm(s.hashAlg!).node : node;
    return privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash, oaepLabel: Buffer.from(`${label}\0`) }, encryptedSecret);
  }
  assert.equal(protector.type, TPM_ALG.ECC);
  const curve = ECC_CURVES[protector.parameters.curveID];
  const eph = decodeTpmsEccPoint(encryptedSecret);
  const ephKey = createPublicKey({ key: { kty: "EC", crv: curve.jwk, x: eph.x.toString("base64url"), y: eph.y.toString("base64url") }, format: "jwk" });
  const z = diffieHellman({ privateKey, publicKey: ephKey });
  return kdfe(protector.nameAlg, z, label, eph.x, protector.unique.x, size * 8);
}

/** Checks the outer HMAC of TPM2B(integrity) ‖ encrypted and returns the decrypted contents. */
export function openOuterWrap(protector: TpmtPublic, seed: Buffer, name: Buffer, wrapped: Buffer): Buffer {
  const { node, size } = hashAlgorithm(protector.nameAlg);
  assert.ok(protector.type === TPM_ALG.RSA || protector.type === TPM_ALG.ECC);
  const keyBits = protector.parameters.symmetric.keyBits!;
  const integrity = wrapped.subarray(2, 2 + wrapped.readUInt16BE(0));
  const encrypted = wrapped.subarray(2 + integrity.length);
  const hmacKey = kdfa(protector.nameAlg, seed, "INTEGRITY", Buffer.alloc(0), Buffer.alloc(0), size * 8);
  assert.deepEqual(createHmac(node, hmacKey).update(encrypted).update(name).digest(), integrity, "outer integrity");
  return cfbDecrypt(kdfa(protector.nameAlg, seed, "STORAGE", name, Buffer.alloc(0), keyBits), encrypted);
}

export function cfbDecrypt(key: Buffer, data: Buffer): Buffer {
  const d = createDecipheriv(`aes-${key.length * 8}-cfb`, key, Buffer.alloc(16));
  return Buffer.concat([d.update(data), d.final()]);
}

const big = (b: Buffer) => BigInt(`0x${b.toString("hex")}`);
const b64 = (n: bigint) => {
  const h = n.toString(16);
  return Buffer.from(h.length % 2 ? `0${h}` : h, "hex").toString("base64url");
};
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, t0, t1] = [m, a % m, 0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, t0, t1] = [r1, r0 - q * r1, t1, t0 - q * t1];
  }
  return ((t0 % m) + m) % m;
}

/** The RSA private key of a TPM object from its public area and its sensitive prime p. */
export function rsaPrivateFromPrime(pub: RsaPublic, prime: Buffer): KeyObject {
  const n = big(pub.unique);
  const p = big(prime);
  const q = n / p;
  assert.equal(p * q, n, "p divides n");
  const e = BigInt(pub.parameters.exponent || 65537);
  const d = modInverse(e, (p - 1n) * (q - 1n));
  return createPrivateKey({
    key: { kty: "RSA", n: b64(n), e: b64(e), d: b64(d), p: b64(p), q: b64(q), dp: b64(d % (p - 1n)), dq: b64(d % (q - 1n)), qi: b64(modInverse(q, p)) },
    format: "jwk",
  });
}

const hex = (s: string) => Buffer.from(s, "hex");
const EK_ATTRS = 0x000300b2;
const EK_POLICY = hex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");

export function rsaEk(bits = 2048, nameAlg: number = TPM_ALG.SHA256, aesBits = 128): { pub: RsaPublic; priv: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  const n = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
  const pub: RsaPublic = {
    type: TPM_ALG.RSA, nameAlg, objectAttributes: EK_ATTRS, authPolicy: EK_POLICY,
    parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: aesBits, mode: TPM_ALG.CFB }, scheme: { scheme: TPM_ALG.NULL }, keyBits: bits, exponent: 0 },
    unique: n,
  };
  return { pub, priv: privateKey };
}
export function eccEk(curveID: number = TPM_ECC.NIST_P256, nameAlg: number = TPM_ALG.SHA256, aesBits = 128): { pub: EccPublic; priv: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: ECC_CURVES[curveID].node });
  const jwk = publicKey.export({ format: "jwk" });
  const pub: EccPublic = {
    type: TPM_ALG.ECC, nameAlg, objectAttributes: EK_ATTRS, authPolicy: EK_POLICY,
    parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: aesBits, mode: TPM_ALG.CFB }, scheme: { scheme: TPM_ALG.NULL }, curveID, kdf: { scheme: TPM_ALG.NULL } },
    unique: { x: Buffer.from(jwk.x!, "base64url"), y: Buffer.from(jwk.y!, "base64url") },
  };
  return { pub, priv: privateKey };
}

