/**
 * Ciphertext envelopes: exact layout, round trip, AAD binding of provider, version and context,
 * and typed parse errors (with offsets) for malformed input; arbitrary bytes never crash the decoder.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeEnvelope, encodeEnvelope, envelopeAad, MAX_CONTEXT } from "../../src/keys/index.js";
import { TpmTrustError } from "../../src/errors.js";

const isCode = (code: string, offset?: number) => (e: unknown) => e instanceof TpmTrustError && e.code === code && (offset === undefined || e.details?.offset === offset);

test("layout: TTKE ‖ 01 ‖ nameLen ‖ name ‖ version u32 ‖ sealed", () => {
  const sealed = Buffer.from("00112233445566778899aabbccddeeff00112233445566778899", "hex");
  const env = encodeEnvelope({ provider: "vm-disks", version: 258, sealed });
  assert.equal(env.subarray(0, 14).toString("hex"), "54544b4501" + "08" + Buffer.from("vm-disks").toString("hex"));
  assert.equal(env.subarray(14, 18).toString("hex"), "00000102");
  assert.deepEqual(env.subarray(18), sealed);
  assert.deepEqual(decodeEnvelope(env), { provider: "vm-disks", version: 258, sealed });
});

test("the AAD binds provider, version and context, each unambiguously", () => {
  const a = envelopeAad("p", 1, Buffer.from("ctx"));
  assert.notDeepEqual(a, envelopeAad("q", 1, Buffer.from("ctx")));
  assert.notDeepEqual(a, envelopeAad("p", 2, Buffer.from("ctx")));
  assert.notDeepEqual(a, envelopeAad("p", 1, Buffer.from("ctX")));
  assert.notDeepEqual(envelopeAad("p", 1), envelopeAad("p", 1, Buffer.from([0])));
  assert.ok(a.toString("latin1").startsWith("tpmtrust/envelope/v1\0TTKE"));
  assert.throws(() => envelopeAad("p", 1, Buffer.alloc(MAX_CONTEXT + 1)), isCode("ERR_PARSE_TOO_LARGE"));
});

test("malformed envelopes: stable codes with offsets", () => {
  const good = encodeEnvelope({ provider: "p1", version: 1, sealed: Buffer.alloc(28, 7) });
  assert.throws(() => decodeEnvelope(Buffer.from("TTK")), isCode("ERR_PARSE_TRUNCATED", 0));
  assert.throws(() => decodeEnvelope(Buffer.concat([Buffer.from("XXXX"), good.subarray(4)])), isCode("ERR_PARSE_FORMAT", 0));
  const fmt = Buffer.from(good);
  fmt[4] = 2;
  assert.throws(() => decodeEnvelope(fmt), isCode("ERR_PARSE_UNSUPPORTED", 4));
  const name = Buffer.from(good);
  name[6] = "P".charCodeAt(0);
  assert.throws(() => decodeEnvelope(name), isCode("ERR_PARSE_BAD_VALUE", 5));
  const v0 = Buffer.from(good);
  v0.writeUInt32BE(0, 8);
  assert.throws(() => decodeEnvelope(v0), isCode("ERR_PARSE_BAD_VALUE", 8));
  assert.throws(() => decodeEnvelope(good.subarray(0, 10)), isCode("ERR_PARSE_TRUNCATED", 8), "inside the version");
  assert.throws(() => decodeEnvelope(good.subarray(0, 12)), isCode("ERR_PARSE_TRUNCATED", 12), "no sealed data");
  assert.throws(() => encodeEnvelope({ provider: "Bad Name", version: 1, sealed: Buffer.alloc(1) }), isCode("ERR_PARSE_BAD_VALUE"));
  assert.throws(() => encodeEnvelope({ provider: "providers", version: 1, sealed: Buffer.alloc(1) }), isCode("ERR_PARSE_BAD_VALUE"), "a reserved word");
  assert.throws(() => encodeEnvelope({ provider: "p", version: 0, sealed: Buffer.alloc(1) }), isCode("ERR_PARSE_BAD_VALUE"));
});

test("property: round trip for any valid envelope; any bytes decode or fail with an ERR_PARSE_ code", () => {
  const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,62}$/).filter((n) => !["providers", "clusters", "servers"].includes(n));
  fc.assert(
    fc.property(name, fc.integer({ min: 1, max: 0xffffffff }), fc.uint8Array({ minLength: 1, maxLength: 200 }), (provider, version, sealed) => {
      const e = { provider, version, sealed: Buffer.from(sealed) };
      assert.deepEqual(decodeEnvelope(encodeEnvelope(e)), e);
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.boolean(), (bytes, withMagic) => {
      const input = withMagic ? Buffer.concat([Buffer.from("TTKE\x01", "latin1"), bytes]) : Buffer.from(bytes);
      try {
        decodeEnvelope(input);
      } catch (e) {
        assert.ok(e instanceof TpmTrustError && e.code.startsWith("ERR_PARSE_"), String(e));
      }
    }),
  );
});
