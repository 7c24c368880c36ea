/** Hostile and random inputs to src/crypto: every failure is a TpmTrustError, never a crash. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { generateKeyPairSync } from "node:crypto";
import { isTpmTrustError } from "../../src/errors.js";
import { decodeCredentialFile, encodeCredentialFile, makeCredential } from "../../src/crypto/credential.js";
import { createDuplicate, hmacKeyObject } from "../../src/crypto/duplicate.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { RAW_SIGNATURE_SCHEMES, signatureFromRaw, verifySignature } from "../../src/crypto/signature.js";
import { TPM_ALG, TPM_ECC } from "../../src/tpm/constants.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { symDef, tpmtPublic, tpmtSignature } from "../tpm/arbitraries.js";
import { eccEk, rsaEk } from "./unwrap.js";

/** Runs fn; passes when it returns or throws a TpmTrustError. */
function typed(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (isTpmTrustError(e)) return true;
    throw e;
  }
}

const hashAlg = fc.constantFrom(TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512, 0x0099);
const realKeys: TpmtPublic[] = [rsaEk(1024).pub, rsaEk(2048).pub, eccEk().pub, eccEk(TPM_ECC.NIST_P384).pub, eccEk(TPM_ECC.NIST_P521).pub];
/** Real key material under arbitrary nameAlg, attributes, symmetric definition and scheme. */
const protector: fc.Arbitrary<TpmtPublic> = fc
  .record({ key: fc.constantFrom(...realKeys), nameAlg: hashAlg, objectAttributes: fc.integer({ min: 0, max: 0xffffffff }), symmetric: symDef, oaep: fc.option(hashAlg) })
  .map(({ key, nameAlg, objectAttributes, symmetric, oaep }) =>
    key.type === TPM_ALG.RSA
      ? { ...key, nameAlg, objectAttributes, parameters: { ...key.parameters, symmetric, scheme: oaep ? { scheme: TPM_ALG.OAEP, hashAlg: oaep } : { scheme: TPM_ALG.NULL } } }
      : key.type === TPM_ALG.ECC
        ? { ...key, nameAlg, objectAttributes, parameters: { ...key.parameters, symmetric } }
        : key,
  );
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

test("MakeCredential and duplication to arbitrary protectors: blobs or typed errors", () => {
  fc.assert(
    fc.property(fc.oneof(protector, tpmtPublic), bytes(70), bytes(70), (pub, name, credential) => typed(() => makeCredential(pub, name, credential))),
    { numRuns: 300 },
  );
  const obj = hmacKeyObject(Buffer.alloc(32, 1));
  fc.assert(fc.property(protector, fc.option(bytes(40)), (pub, innerKey) => typed(() => createDuplicate(pub, obj.public, obj.sensitive, { innerKey: innerKey ?? undefined }))), { numRuns: 200 });
  // e.g. OAEP with SHA-512 does not fit a 1024-bit modulus
  const small = rsaEk(1024, TPM_ALG.SHA512).pub;
  assert.throws(() => makeCredential(small, Buffer.alloc(66, 1), Buffer.alloc(16)), { code: "ERR_PARSE_UNSUPPORTED" });
  // an injected ephemeral scalar of zero
  assert.throws(() => makeCredential(eccEk().pub, Buffer.alloc(34, 1), Buffer.alloc(16), { random: (n) => Buffer.alloc(n) }), { code: "ERR_PARSE_BAD_VALUE" });
});

test("arbitrary public areas and signatures: verification ends in a typed error", () => {
  fc.assert(fc.property(tpmtPublic, (pub) => typed(() => publicKeyFromTpmt(pub))), { numRuns: 300 });
  fc.assert(fc.property(tpmtSignature, fc.oneof(protector, tpmtPublic), bytes(64), (sig, pub, msg) => typed(() => verifySignature(sig, msg, pub))), { numRuns: 300 });
});

test("credential files and raw signatures: random and mutated bytes never crash", () => {
  const file = encodeCredentialFile(makeCredential(rsaEk().pub, Buffer.alloc(34, 1), Buffer.alloc(16)));
  fc.assert(fc.property(bytes(400), (b) => typed(() => decodeCredentialFile(b))), { numRuns: 300 });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: file.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: file.length }), (i, v, cut) => {
      const m = Buffer.from(file);
      m[i] = v;
      return typed(() => decodeCredentialFile(m.subarray(0, cut)));
    }),
    { numRuns: 300 },
  );
  const p256 = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey;
  fc.assert(fc.property(fc.constantFrom(...RAW_SIGNATURE_SCHEMES, "nonsense"), bytes(140), fc.constantFrom(p256, realKeys[1], undefined), (scheme, raw, key) => typed(() => signatureFromRaw(scheme, raw, key))), {
    numRuns: 500,
  });
});
