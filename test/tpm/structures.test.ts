import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import * as S from "../../src/tpm/structures.js";
import { TpmTrustError } from "../../src/errors.js";
import { TPM_ALG, TPM_ST } from "../../src/tpm/constants.js";
import * as A from "./arbitraries.js";

const fx = (p: string) => readFileSync(new URL(`../fixtures/${p}`, import.meta.url));

/** fast-check builds null-prototype records; compare structure and bytes only. */
function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString("hex")}`;
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Every codec pair: the value arbitrary, encode and decode. */
const codecs: [string, fc.Arbitrary<any>, (v: any) => Buffer, (b: Uint8Array) => unknown][] = [
  ["TPMT_PUBLIC", A.tpmtPublic, S.encodeTpmtPublic, S.decodeTpmtPublic],
  ["TPM2B_PUBLIC", A.tpmtPublic, S.encodeTpm2bPublic, S.decodeTpm2bPublic],
  ["TPMS_ATTEST", A.tpmsAttest, S.encodeTpmsAttest, S.decodeTpmsAttest],
  ["TPM2B_ATTEST", A.tpmsAttest, S.encodeTpm2bAttest, S.decodeTpm2bAttest],
  ["TPMT_SIGNATURE", A.tpmtSignature, S.encodeTpmtSignature, S.decodeTpmtSignature],
  ["TPML_PCR_SELECTION", fc.array(A.pcrSelectionArb, { maxLength: 16 }), S.encodeTpmlPcrSelection, S.decodeTpmlPcrSelection],
  ["TPML_DIGEST", A.tpmlDigest, S.encodeTpmlDigest, S.decodeTpmlDigest],
  ["TPMS_CREATION_DATA", A.tpmsCreationData, S.encodeTpmsCreationData, S.decodeTpmsCreationData],
  ["TPM2B_CREATION_DATA", A.tpmsCreationData, S.encodeTpm2bCreationData, S.decodeTpm2bCreationData],
  ["TPMT_SENSITIVE", A.tpmtSensitive, S.encodeTpmtSensitive, S.decodeTpmtSensitive],
  ["TPM2B_SENSITIVE", A.tpmtSensitive, S.encodeTpm2bSensitive, S.decodeTpm2bSensitive],
  ["TPM2B_ID_OBJECT", A.idObject, S.encodeTpm2bIdObject, S.decodeTpm2bIdObject],
  ["TPMS_NV_PUBLIC", A.tpmsNvPublic, S.encodeTpmsNvPublic, S.decodeTpmsNvPublic],
  ["TPM2B_NV_PUBLIC", A.tpmsNvPublic, S.encodeTpm2bNvPublic, S.decodeTpm2bNvPublic],
  ["TPM2B_PRIVATE", fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), S.encodeTpm2bPrivate, S.decodeTpm2bPrivate],
  ["TPM2B_ENCRYPTED_SECRET", fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)), S.encodeTpm2bEncryptedSecret, S.decodeTpm2bEncryptedSecret],
];

for (const [name, arb, enc, dec] of codecs) {
  test(`${name}: decode(encode(x)) = x and encode(decode(b)) = b`, () => {
    fc.assert(
      fc.property(arb, (v) => {
        const bytes = enc(v);
        const back = dec(bytes);
        assert.deepEqual(plain(back), plain(v));
        assert.deepEqual(enc(back), bytes);
      }),
      { numRuns: 200 },
    );
  });

  test(`${name}: mutated, truncated and extended bytes give only typed errors`, () => {
    fc.assert(
      fc.property(arb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 }), (v, pos, byte, how) => {
        const bytes = Buffer.from(enc(v));
        let input: Buffer;
        if (how === 0 && bytes.length) input = Buffer.from(bytes), (input[pos % bytes.length] = byte);
        else if (how === 1) input = bytes.subarray(0, pos % (bytes.length + 1));
        else input = Buffer.concat([bytes, Buffer.of(byte)]);
        try {
          dec(input);
        } catch (e) {
          assert.ok(e instanceof TpmTrustError, `untyped error: ${e}`);
          assert.match(e.code, /^ERR_(PARSE_|MAGIC)/);
        }
      }),
      { numRuns: 300 },
    );
  });
}

test("random bytes never crash any decoder", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
      for (const [, , , dec] of codecs) {
        try {
          dec(b);
        } catch (e) {
          assert.ok(e instanceof TpmTrustError, `untyped error: ${e}`);
        }
      }
    }),
    { numRuns: 500 },
  );
});

test("trailing bytes are rejected with their offset", () => {
  const q = fx("quotes/swtpm-pcr16-quote.bin");
  assert.throws(() => S.decodeTpmsAttest(Buffer.concat([q, Buffer.of(0)])), (e: TpmTrustError) => e.code === "ERR_PARSE_TRAILING_BYTES" && e.details?.offset === q.length);
});

test("truncated input names the field and offset", () => {
  const q = fx("quotes/swtpm-pcr16-quote.bin");
  assert.throws(() => S.decodeTpmsAttest(q.subarray(0, 5)), (e: TpmTrustError) => e.code === "ERR_PARSE_TRUNCATED" && e.details?.offset === 4);
});

test("bad magic is ERR_MAGIC; oversize TPM2B is ERR_PARSE_TOO_LARGE", () => {
  const q = Buffer.from(fx("quotes/swtpm-pcr16-quote.bin"));
  q[0] ^= 1;
  assert.throws(() => S.decodeTpmsAttest(q), (e: TpmTrustError) => e.code === "ERR_MAGIC");
  const big = Buffer.from("ff544347801800ff", "hex");
  assert.throws(() => S.decodeTpmsAttest(big), (e: TpmTrustError) => e.code === "ERR_PARSE_TOO_LARGE" && e.details?.offset === 6);
});

test("a real swtpm quote parses and re-encodes byte for byte", () => {
  const q = fx("quotes/swtpm-pcr16-quote.bin");
  const a = S.decodeTpmsAttest(q);
  assert.equal(a.type, TPM_ST.ATTEST_QUOTE);
  assert.equal(a.extraData.toString(), "Ai5M5SjYjnkyv4P7itH1");
  if (a.type !== TPM_ST.ATTEST_QUOTE) return;
  assert.deepEqual(S.selectedPcrs(a.attested.pcrSelect[0]), [16]);
  assert.equal(a.attested.pcrDigest.toString("hex"), "6d4d3749132f6257172164cd5ff3135f447973d4a5c84e018901f6753705b701");
  assert.deepEqual(S.encodeTpmsAttest(a), q);
  const sig = S.decodeTpmtSignature(fx("quotes/swtpm-pcr16-sig.bin"));
  assert.equal(sig.sigAlg, TPM_ALG.RSASSA);
});

test("EK publics derived from real Infineon certificates parse as standard templates", () => {
  for (const f of ["infineon_rsa_ek", "infineon_ecc_ek"]) {
    const b = fx(`ek-certs/${f}.expected_tpm2b_public.bin`);
    const p = S.decodeTpm2bPublic(b);
    assert.equal(p.objectAttributes, 0x000300b2);
    assert.equal(p.authPolicy.toString("hex"), "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
    assert.deepEqual(S.encodeTpm2bPublic(p), b);
    const n = S.objectName(p);
    assert.equal(n.readUInt16BE(0), TPM_ALG.SHA256);
    assert.equal(n.length, 34);
  }
});

test("pcrSelection and selectedPcrs are inverse", () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 23 })), (pcrs) => {
      assert.deepEqual(S.selectedPcrs(S.pcrSelection(TPM_ALG.SHA256, pcrs)), [...pcrs].sort((a, b) => a - b));
    }),
  );
  assert.deepEqual(S.pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 3, 4, 5, 6, 7, 16]).select, Buffer.from("ff0001", "hex"));
});

test("qualified name of a primary under the endorsement hierarchy", () => {
  const p = S.decodeTpm2bPublic(fx("ek-certs/infineon_rsa_ek.expected_tpm2b_public.bin"));
  const n = S.objectName(p);
  const qn = S.qualifiedName(S.handleName(0x4000000b), n);
  assert.equal(qn.length, 34);
  assert.deepEqual(qn.subarray(2), S.hashOf(TPM_ALG.SHA256, Buffer.from("4000000b", "hex"), n));
});
