import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { kdfa, kdfe } from "../../src/crypto/kdf.js";
import { TPM_ALG } from "../../src/tpm/constants.js";

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/crypto/tpm-test-vectors/${name}`, import.meta.url), "utf8"));
const hex = (s: string) => Buffer.from(s, "hex");

interface KdfVector { Name: string; HashAlg: number; Label: string; ContextU: string; ContextV: string; Bits: number; Result: string; Key?: string; Z?: string }

for (const [kdf, file, secret] of [[kdfa, "kdfa.json", "Key"], [kdfe, "kdfe.json", "Z"]] as const) {
  test(`${file}: 100 published vectors (SHA-1/256/384/512, odd bit lengths, labels with their NUL)`, () => {
    const vectors: KdfVector[] = fixture(file);
    assert.equal(vectors.length, 100);
    for (const v of vectors) {
      const out = kdf(v.HashAlg, hex(v[secret]!), v.Label, hex(v.ContextU), hex(v.ContextV), v.Bits);
      assert.equal(out.toString("hex"), v.Result, v.Name);
    }
  });
}

test("KDFa: the TPM reference implementation's self-test vectors (label given with its NUL)", () => {
  // TCG reference code / libtpms KdfTestData.h: 20-byte key, label "KDFSELFTESTLABEL\0", 160 bits.
  const key = hex("271fa08bbdc5060ec3dfa928ff9b73123a12da0c");
  const label = Buffer.from("KDFSELFTESTLABEL\0", "latin1");
  const u = hex("ce244f395dca7391");
  const v = hex("da504031ddf12e83");
  const expected: [number, string][] = [
    [TPM_ALG.SHA1, "55b5a7184aa07423c47dae766c26a2377d7cf851"],
    [TPM_ALG.SHA256, "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4"],
    [TPM_ALG.SHA384, "1dce70c9113eb2dba47bd9cfc72bf46f45b09312"],
    [TPM_ALG.SHA512, "8be2c1b85b78569b9fa759f5857c56d684810fd3"],
  ];
  for (const [alg, out] of expected) {
    assert.equal(kdfa(alg, key, label, u, v, 160).toString("hex"), out);
    // the same label without its NUL gets one appended: same output
    assert.equal(kdfa(alg, key, "KDFSELFTESTLABEL", u, v, 160).toString("hex"), out);
  }
});

test("KDFa: DPS reference vectors (credential and duplication keys)", () => {
  // /shared/reference/dps README: seeds 44×32 / 55×32 with Names from an swtpm run, accepted by swtpm.
  const srkName = hex("000baf825abfdd993c007824d68287689181ef0c1e7dc848bf942d9523b87daefbd7");
  const credSeed = Buffer.alloc(32, 0x44);
  assert.equal(kdfa(TPM_ALG.SHA256, credSeed, "STORAGE", srkName, Buffer.alloc(0), 128).toString("hex"), "ac9a312e701a3123b91d7a99e4dbff5e");
  assert.equal(
    kdfa(TPM_ALG.SHA256, credSeed, "INTEGRITY", Buffer.alloc(0), Buffer.alloc(0), 256).toString("hex"),
    "7dff741117d173649d298312e9ae22d4727d25ed56d85ad78fa8b0494cb33351",
  );
  const objName = hex("000b304dead97468fd45bb070616cc03b0137abb62fc3063d50e1428cbd38545ec7f");
  const dupSeed = Buffer.alloc(32, 0x55);
  assert.equal(kdfa(TPM_ALG.SHA256, dupSeed, "STORAGE", objName, Buffer.alloc(0), 128).toString("hex"), "01ad4a62b390ada263255d3c8f19d9d6");
});

test("KDFa equals an independent SP 800-108 counter-mode computation over several blocks", () => {
  const key = Buffer.from("a key");
  const u = Buffer.from("context-u");
  const v = Buffer.from("context-v");
  for (const [alg, name] of [[TPM_ALG.SHA256, "sha256"], [TPM_ALG.SHA384, "sha384"]] as const) {
    for (const bits of [8, 256, 264, 1000, 1024]) {
      const blocks: Buffer[] = [];
      for (let i = 1; blocks.length * 32 < 2 * bits; i++) {
        const msg = Buffer.concat([Buffer.from([0, 0, 0, i]), Buffer.from("LABEL\0"), u, v, Buffer.from([0, 0, bits >> 8, bits & 0xff])]);
        blocks.push(createHmac(name, key).update(msg).digest());
      }
      const want = Buffer.concat(blocks).subarray(0, Math.ceil(bits / 8));
      assert.deepEqual(kdfa(alg, key, "LABEL", u, v, bits), want, `${name} ${bits}`);
    }
  }
});

test("KDFe equals an independent SP 800-56A concatenation computation", () => {
  const z = Buffer.alloc(48, 7);
  const bits = 48 * 8 * 2 + 8;
  const blocks: Buffer[] = [];
  for (let i = 1; i <= 3; i++) {
    blocks.push(createHash("sha384").update(Buffer.concat([Buffer.from([0, 0, 0, i]), z, Buffer.from("IDENTITY\0"), Buffer.from("U"), Buffer.from("V")])).digest());
  }
  assert.deepEqual(kdfe(TPM_ALG.SHA384, z, "IDENTITY", Buffer.from("U"), Buffer.from("V"), bits), Buffer.concat(blocks).subarray(0, bits / 8));
});

test("KDFs reject unknown hashes and impossible lengths with typed errors", () => {
  assert.throws(() => kdfa(0x0099, Buffer.alloc(1), "X", undefined, undefined, 8), { code: "ERR_PARSE_UNSUPPORTED" });
  assert.throws(() => kdfa(TPM_ALG.SHA256, Buffer.alloc(1), "X", undefined, undefined, -8), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => kdfa(TPM_ALG.SHA256, Buffer.alloc(1), "X", undefined, undefined, (1 << 16) + 1), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => kdfe(TPM_ALG.SHA256, Buffer.alloc(1), "X", Buffer.alloc(0), Buffer.alloc(0), 1.5), { code: "ERR_PARSE_BAD_VALUE" });
});
