import { test } from "node:test";
import assert from "node:assert/strict";
import { createDuplicate, hmacKeyObject, sealedDataObject } from "../../src/crypto/duplicate.js";
import { TPM_ALG, TPM_ECC } from "../../src/tpm/constants.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bPrivate, decodeTpm2bPublic, decodeTpm2bSensitive, encodeTpm2bSensitive, hashOf, objectName } from "../../src/tpm/structures.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { cfbDecrypt, eccEk, openOuterWrap, recoverSeed, rsaEk } from "./unwrap.js";

const hex = (s: string) => Buffer.from(s, "hex");
const fixed = (b: Buffer) => () => Buffer.from(b);

/** What TPM2_Import does with the blob (Part 1 §23.3.2), from the spec: returns TPM2B_SENSITIVE. */
function importBlob(parent: ReturnType<typeof rsaEk> | ReturnType<typeof eccEk>, blob: ReturnType<typeof createDuplicate>, innerKey?: Buffer): Buffer {
  const pub = decodeTpm2bPublic(blob.public);
  const name = objectName(pub);
  assert.deepEqual(name, blob.name);
  const seed = recoverSeed(parent.pub, parent.priv, decodeTpm2bEncryptedSecret(blob.inSymSeed), "DUPLICATE");
  const enc = openOuterWrap(parent.pub, seed, name, decodeTpm2bPrivate(blob.duplicate));
  if (!innerKey) return enc;
  const plain = cfbDecrypt(innerKey, enc);
  const integrity = plain.subarray(2, 2 + plain.readUInt16BE(0));
  const sens = plain.subarray(2 + integrity.length);
  assert.deepEqual(hashOf(pub.nameAlg, sens, name), integrity, "inner integrity");
  return sens;
}

test("duplication equals the DPS reference vector (HMAC key 11×32, seedValue 22×32, inner key 33×16, seed 55×32)", () => {
  const obj = hmacKeyObject(Buffer.alloc(32, 0x11), { random: fixed(Buffer.alloc(32, 0x22)) });
  const srk = rsaEk();
  const blob = createDuplicate(srk.pub, obj.public, obj.sensitive, { innerKey: Buffer.alloc(16, 0x33), random: fixed(Buffer.alloc(32, 0x55)) });
  assert.equal(blob.name.toString("hex"), "000b304dead97468fd45bb070616cc03b0137abb62fc3063d50e1428cbd38545ec7f");
  assert.equal(blob.public.toString("hex"), "00300008000b0004004000000005000b0020adfafc05aac733fe9509f43bd1d158c882890351c7f343634c8ef9ea42cdb505");
  assert.equal(
    blob.duplicate.toString("hex"),
    "008e0020f3a8a91d120e9dc67b56497f4352e25a7ac6591ecc89b01fb9a3c1b6571572e7d7caea893a874b06c7ac7f12" +
      "56df613091423a37ad9eea9432f775c4b35258fec52b74d58deba19e587685abf031065808794a553f0c9643c5311372" +
      "ac86c01c5b27277d819d6a9914c0692dbb01fa75fcbd8b3f2cc7db87f6df61334e6411c5e3d1a280bebf2db16e22caaa",
  );
  assert.equal(blob.inSymSeed.length, 2 + 256);
});

test("outer-only and outer+inner wraps open to the TPM2B_SENSITIVE, for RSA and ECC parents of every size", () => {
  const parents = [rsaEk(), rsaEk(2048, TPM_ALG.SHA384, 256), eccEk(), eccEk(TPM_ECC.NIST_P384, TPM_ALG.SHA384, 256), eccEk(TPM_ECC.NIST_P521, TPM_ALG.SHA512, 256)];
  const objects = [hmacKeyObject(Buffer.alloc(64, 1)), hmacKeyObject(Buffer.alloc(100, 2), { hashAlg: TPM_ALG.SHA384, nameAlg: TPM_ALG.SHA384 }), sealedDataObject(Buffer.from("the disk key"), { authValue: Buffer.from("pw") })];
  for (const parent of parents) {
    for (const obj of objects) {
      const sens = encodeTpm2bSensitive(obj.sensitive);
      assert.deepEqual(importBlob(parent, createDuplicate(parent.pub, obj.public, obj.sensitive)), sens);
      for (const innerKey of [Buffer.alloc(16, 3), Buffer.alloc(32, 4)]) {
        const blob = createDuplicate(parent.pub, obj.public, obj.sensitive, { innerKey });
        assert.deepEqual(importBlob(parent, blob, innerKey), sens);
        assert.throws(() => importBlob(parent, blob, Buffer.alloc(innerKey.length, 5)));
      }
      assert.deepEqual(decodeTpm2bSensitive(sens), obj.sensitive);
    }
  }
});

test("HMAC key and sealed data objects: template bytes, unique = H(seedValue ‖ data), bounds", () => {
  const h = hmacKeyObject(Buffer.alloc(32, 0xaa), { random: fixed(Buffer.alloc(32, 0xbb)) });
  assert.equal(h.public.objectAttributes, 0x00040040);
  assert.deepEqual(h.public.unique, hashOf(TPM_ALG.SHA256, Buffer.alloc(32, 0xbb), Buffer.alloc(32, 0xaa)));
  assert.deepEqual(h.sensitive, { sensitiveType: TPM_ALG.KEYEDHASH, authValue: Buffer.alloc(0), seedValue: Buffer.alloc(32, 0xbb), sensitive: Buffer.alloc(32, 0xaa) });
  const s = sealedDataObject(Buffer.from("secret"), { nameAlg: TPM_ALG.SHA384 });
  assert.equal(s.public.objectAttributes, 0x00000040);
  assert.ok(s.public.type === TPM_ALG.KEYEDHASH && s.public.parameters.scheme.scheme === TPM_ALG.NULL);
  assert.equal(s.sensitive.seedValue.length, 48);
  assert.throws(() => hmacKeyObject(Buffer.alloc(65)), { code: "ERR_PARSE_TOO_LARGE" });
  assert.doesNotThrow(() => hmacKeyObject(Buffer.alloc(128), { hashAlg: TPM_ALG.SHA512 }));
  assert.throws(() => hmacKeyObject(Buffer.alloc(0)), { code: "ERR_PARSE_TOO_LARGE" });
  assert.throws(() => sealedDataObject(Buffer.alloc(129)), { code: "ERR_PARSE_TOO_LARGE" });
  assert.throws(() => sealedDataObject(Buffer.alloc(8), { authValue: Buffer.alloc(33) }), { code: "ERR_PARSE_TOO_LARGE" });
});

test("createDuplicate refuses objects TPM2_Import would reject", () => {
  const parent = rsaEk().pub;
  const obj = hmacKeyObject(Buffer.alloc(32, 1));
  const withAttrs = (a: number): TpmtPublic => ({ ...obj.public, objectAttributes: obj.public.objectAttributes | a });
  assert.throws(() => createDuplicate(parent, withAttrs(0x2), obj.sensitive), { code: "ERR_PARSE_BAD_VALUE" }); // fixedTPM
  assert.throws(() => createDuplicate(parent, withAttrs(0x10), obj.sensitive), { code: "ERR_PARSE_BAD_VALUE" }); // fixedParent
  assert.throws(() => createDuplicate(parent, withAttrs(0x800), obj.sensitive), { code: "ERR_PARSE_BAD_VALUE" }); // encryptedDuplication, no inner key
  assert.doesNotThrow(() => createDuplicate(parent, withAttrs(0x800), obj.sensitive, { innerKey: Buffer.alloc(16) }));
  assert.throws(() => createDuplicate(parent, obj.public, { ...obj.sensitive, sensitiveType: TPM_ALG.RSA }), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => createDuplicate(parent, obj.public, obj.sensitive, { innerKey: Buffer.alloc(15) }), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => createDuplicate({ ...parent, parameters: { ...parent.parameters, symmetric: { algorithm: TPM_ALG.NULL } } }, obj.public, obj.sensitive), { code: "ERR_PARSE_UNSUPPORTED" });
});
