/**
 * DPS wire formats, without a TPM: default registration ids, the authenticationKey layout and its
 * reference bytes, SAS tokens as the C and .NET SDKs write them, device keys at rest, allocation.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { pickHashed, checkAllocation } from "../../src/provisioning/allocation.js";
import { buildAuthenticationKey, parseAuthenticationKey } from "../../src/provisioning/authentication-key.js";
import { DeviceKeyWrapper } from "../../src/provisioning/device-keys.js";
import { base32Lower, defaultRegistrationId } from "../../src/provisioning/registration-id.js";
import { checkSasClaims, encodeSasScope, formatSasToken, parseSasToken, sasScope, sasSignatureValid, stringToSign } from "../../src/provisioning/sas.js";
import { checkStorageKey } from "../../src/provisioning/tpm-keys.js";
import { checkTwin } from "../../src/provisioning/twin.js";
import { encodeTpm2bPublic, objectName } from "../../src/tpm/structures.js";
import type { Hub } from "../../src/store/index.js";
import { softDevice, softSrk, unwrapAuthenticationKey } from "../helpers/soft-device.js";
import { eccEk, rsaEk } from "../crypto/unwrap.js";

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
const fixture = (p: string) => readFileSync(new URL(`../fixtures/${p}`, import.meta.url));

test("base32: RFC 4648 §10 vectors, lowercase, no padding", () => {
  const vectors: [string, string][] = [["", ""], ["f", "my"], ["fo", "mzxq"], ["foo", "mzxw6"], ["foob", "mzxw6yq"], ["fooba", "mzxw6ytb"], ["foobar", "mzxw6ytboi"]];
  for (const [input, out] of vectors) assert.equal(base32Lower(Buffer.from(input)), out);
});

test("default registration id hashes the EK's TPM2B_PUBLIC including its size (52 characters)", () => {
  // expected value computed with the DPS reference script registration_id.py on the same bytes
  const tpm2b = fixture("ek-certs/infineon_rsa_ek.expected_tpm2b_public.bin");
  assert.equal(defaultRegistrationId(tpm2b), "nzlsiwuuzzcata3f6os5ollnhlm2baqladi54oxetbi2dzgobnoa");
  const d = softDevice();
  const id = defaultRegistrationId(d.ek);
  assert.equal(id, defaultRegistrationId(encodeTpm2bPublic(d.ek)));
  assert.match(id, /^[a-z2-7]{52}$/);
});

/** Random bytes from a script, in the order the builder draws them. */
function scripted(...chunks: Buffer[]) {
  return (n: number) => {
    const c = chunks.shift();
    assert.ok(c && c.length === n, `expected a draw of ${c?.length}, got ${n}`);
    return c;
  };
}

test("authenticationKey: layout for an RSA-2048 EK and SRK, trailer 00 00, reference bytes of the duplicate and public parts", () => {
  const ek = rsaEk();
  const srk = softSrk();
  const key = Buffer.alloc(32, 0x11);
  // inner key 33×16, credential seed 44×32, seedValue 22×32, duplication seed 55×32 (DPS reference vector inputs)
  const random = scripted(Buffer.alloc(16, 0x33), Buffer.alloc(32, 0x44), Buffer.alloc(32, 0x22), Buffer.alloc(32, 0x55));
  const { blob, keyName } = buildAuthenticationKey(ek.pub, srk.pub, key, { random });
  assert.equal(blob.length, 766);
  const sizes = [54, 258, 144, 258, 50, 2].map((n) => n - 2);
  let off = 0;
  for (const size of sizes) {
    assert.equal(blob.readUInt16BE(off), size, `TPM2B size at ${off}`);
    off += 2 + size;
  }
  assert.equal(off, blob.length);
  assert.deepEqual(blob.subarray(764), Buffer.from([0, 0]));
  // the reference vector of shared/reference/dps (README "Reference vector"), accepted by swtpm
  assert.equal(
    blob.subarray(714, 764).toString("hex"),
    "00300008000b0004004000000005000b0020adfafc05aac733fe9509f43bd1d158c882890351c7f343634c8ef9ea42cdb505",
  );
  assert.equal(
    blob.subarray(312, 456).toString("hex"),
    "008e0020f3a8a91d120e9dc67b56497f4352e25a7ac6591ecc89b01fb9a3c1b6571572e7d7caea893a874b06c7ac7f12" +
      "56df613091423a37ad9eea9432f775c4b35258fec52b74d58deba19e587685abf031065808794a553f0c9643c5311372" +
      "ac86c01c5b27277d819d6a9914c0692dbb01fa75fcbd8b3f2cc7db87f6df61334e6411c5e3d1a280bebf2db16e22caaa",
  );
  assert.equal(keyName.toString("hex"), "000b304dead97468fd45bb070616cc03b0137abb62fc3063d50e1428cbd38545ec7f");
  assert.deepEqual(unwrapAuthenticationKey(blob, ek.pub, ek.priv, srk.pub, srk.priv), key);
});

test("authenticationKey: an ECC P-256 EK (ECDH + KDFe credential) opens to the same key; a blob for another EK does not", () => {
  const ek = eccEk();
  const srk = softSrk();
  const key = randomBytes(32);
  const { blob } = buildAuthenticationKey(ek.pub, srk.pub, key);
  assert.deepEqual(unwrapAuthenticationKey(blob, ek.pub, ek.priv, srk.pub, srk.priv), key);
  const other = eccEk();
  assert.throws(() => unwrapAuthenticationKey(blob, other.pub, other.priv, srk.pub, srk.priv));
});

test("authenticationKey parsing: with or without the trailer; truncation and stray bytes are typed errors with offsets", () => {
  const ek = rsaEk();
  const srk = softSrk();
  const { blob } = buildAuthenticationKey(ek.pub, srk.pub, randomBytes(32), { trailer: Buffer.from("hello") });
  assert.equal(blob.length, 771);
  assert.deepEqual(parseAuthenticationKey(blob).trailer, Buffer.from("hello"));
  assert.equal(parseAuthenticationKey(blob.subarray(0, 764)).trailer, undefined);
  assert.throws(() => parseAuthenticationKey(blob.subarray(0, 700)), (e: unknown) => code("ERR_PARSE_TRUNCATED")(e) && (e as { details: { offset: number } }).details.offset === 458);
  assert.throws(() => parseAuthenticationKey(blob.subarray(0, 765)), code("ERR_PARSE_TRUNCATED"));
  assert.throws(() => parseAuthenticationKey(Buffer.concat([blob, Buffer.of(0)])), code("ERR_PARSE_TRAILING_BYTES"));
});

test("SAS tokens: C (%2f) and .NET (%2F) encodings verify over sr exactly as sent; audience, expiry, lifetime, skn", () => {
  const key = randomBytes(32);
  const now = 1_900_000_000_000;
  const x = { idScope: "0ne00ABC123", registrationId: "dev-1", now, maxLifetimeMs: 86_400_000 };
  for (const style of ["c", "dotnet"] as const) {
    const sr = encodeSasScope(sasScope("0ne00ABC123", "dev-1"), style);
    assert.equal(sr, style === "c" ? "0ne00ABC123%2fregistrations%2fdev-1" : "0ne00ABC123%2Fregistrations%2Fdev-1");
    const se = now / 1000 + 600;
    const t = parseSasToken(formatSasToken(sr, createHmac("sha256", key).update(stringToSign(sr, se)).digest(), se));
    assert.equal(t.sr, sr);
    checkSasClaims(t, x);
    assert.ok(sasSignatureValid(t, key));
    assert.ok(!sasSignatureValid(t, randomBytes(32)));
  }
  // the signature covers sr as sent: re-encoding it (another hex case) breaks it
  const sr = "0ne00ABC123%2fregistrations%2fdev-1";
  const sig = createHmac("sha256", key).update(stringToSign(sr, 1_900_000_600)).digest();
  const reencoded = parseSasToken(formatSasToken(sr.replace(/%2f/g, "%2F"), sig, 1_900_000_600));
  checkSasClaims(reencoded, x);
  assert.ok(!sasSignatureValid(reencoded, key));
  // se is signed as sent, leading zeros included
  const z = parseSasToken(`SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(createHmac("sha256", key).update(`${sr}\n01900000600`).digest("base64"))}&se=01900000600&skn=registration`);
  assert.ok(sasSignatureValid(z, key));

  const token = (o: { sr?: string; se?: number; skn?: string }) =>
    parseSasToken(`SharedAccessSignature sr=${o.sr ?? sr}&sig=${encodeURIComponent(sig.toString("base64"))}&se=${o.se ?? 1_900_000_600}&skn=${o.skn ?? "registration"}`);
  assert.throws(() => checkSasClaims(token({ se: 1_899_999_999 }), x), code("ERR_SAS_EXPIRED"));
  assert.throws(() => checkSasClaims(token({ se: 1_900_000_000 + 86_401 }), x), code("ERR_SAS_INVALID"));
  assert.throws(() => checkSasClaims(token({ sr: "0ne00ABC123%2fregistrations%2fdev-2" }), x), code("ERR_SAS_INVALID"));
  assert.throws(() => checkSasClaims(token({ sr: "0ne00XYZ%2fregistrations%2fdev-1" }), x), code("ERR_SAS_INVALID"));
  assert.throws(() => checkSasClaims(token({ skn: "iothubowner" }), x), code("ERR_SAS_INVALID"));
  for (const bad of ["Bearer abc", "SharedAccessSignature sr=a&sig=b", "SharedAccessSignature sr=a&sig=!!!!&se=1", "SharedAccessSignature sr=a&sr=b&sig=AA==&se=1", "SharedAccessSignature sr=a&sig=AA==&se=1&x=2", "SharedAccessSignature sr=%zz&sig=AA==&se=1x"]) {
    assert.throws(() => parseSasToken(bad), code("ERR_SAS_INVALID"), bad);
  }
});

test("device keys at rest: AES-256-GCM under the master key, bound to registration id, EK and SRK", () => {
  const master = new DeviceKeyWrapper(randomBytes(32));
  const key = randomBytes(32);
  const b = { registrationId: "dev-1", ekName: Buffer.from("ek"), srkName: Buffer.from("srk") };
  const wrapped = master.wrap(key, b);
  assert.ok(!wrapped.includes(key));
  assert.deepEqual(master.unwrap(wrapped, b), key);
  assert.deepEqual(master.unwrap(wrapped, { ...b, registrationId: "DEV-1" }), key, "ids are case-insensitive");
  assert.equal(master.unwrap(wrapped, { ...b, registrationId: "dev-2" }), undefined);
  assert.equal(master.unwrap(wrapped, { ...b, ekName: Buffer.from("ek2") }), undefined);
  assert.equal(master.unwrap(wrapped, { ...b, srkName: Buffer.from("srk2") }), undefined);
  assert.throws(() => new DeviceKeyWrapper(randomBytes(32)).unwrap(wrapped, b), (e: unknown) => code("ERR_INTERNAL")(e) && /same key file/.test((e as Error).message));
  assert.throws(() => new DeviceKeyWrapper(randomBytes(16)), code("ERR_USAGE"));
});

test("storage key checks: a restricted decryption key with fixedTPM/fixedParent and AES-CFB, else a typed error", () => {
  const srk = softSrk().pub;
  checkStorageKey(srk, "storageRootKey");
  checkStorageKey(rsaEk().pub, "endorsementKey");
  const attrs = (a: number) => ({ ...srk, objectAttributes: a });
  assert.throws(() => checkStorageKey(attrs(srk.objectAttributes & ~0x10000), "storageRootKey"), code("ERR_KEY_NOT_RESTRICTED"));
  assert.throws(() => checkStorageKey(attrs(srk.objectAttributes & ~0x20000), "storageRootKey"), code("ERR_KEY_NOT_RESTRICTED"));
  assert.throws(() => checkStorageKey(attrs(srk.objectAttributes | 0x40000), "storageRootKey"), code("ERR_KEY_DECRYPT"));
  assert.throws(() => checkStorageKey(attrs(srk.objectAttributes & ~0x2), "storageRootKey"), code("ERR_KEY_NOT_FIXED_TPM"));
  assert.throws(() => checkStorageKey({ ...srk, parameters: { ...srk.parameters, keyBits: 1024 } }, "storageRootKey"), code("ERR_KEY_TOO_WEAK"));
  assert.throws(() => checkStorageKey({ ...srk, parameters: { ...srk.parameters, symmetric: { algorithm: 0x10 } } }, "storageRootKey"), code("ERR_PARSE_UNSUPPORTED"));
  assert.notDeepEqual(objectName(srk), objectName(attrs(srk.objectAttributes & ~0x10000)));
});

const hub = (name: string, weight: number): Hub => ({ name, hostname: `${name}.example.net`, weight, createdAt: 0 });

test("hashed allocation: weighted shares, weight 0 gets none, adding a hub only moves devices to it", () => {
  const ids = Array.from({ length: 3000 }, (_, i) => `device-${i}`);
  const hubs = [hub("a", 1), hub("b", 2), hub("z", 0)];
  const counts = new Map<string, number>();
  const before = new Map(ids.map((id) => [id, pickHashed(id, hubs)!.name]));
  for (const h of before.values()) counts.set(h, (counts.get(h) ?? 0) + 1);
  assert.equal(counts.get("z"), undefined);
  const shareB = counts.get("b")! / ids.length;
  assert.ok(shareB > 0.6 && shareB < 0.73, `b has ${shareB} of the devices, expected about 2/3`);
  assert.equal(pickHashed("DEVICE-7", hubs)?.name, before.get("device-7"), "case-insensitive ids");
  const more = [...hubs, hub("c", 3)];
  let moved = 0;
  for (const id of ids) {
    const now = pickHashed(id, more)!.name;
    if (now !== before.get(id)) {
      assert.equal(now, "c", `${id} moved to ${now}, not to the new hub`);
      moved++;
    }
  }
  assert.ok(moved > ids.length * 0.4 && moved < ids.length * 0.6, `${moved} devices moved, expected about half`);
  assert.equal(pickHashed("x", [hub("z", 0)]), undefined);
});

test("allocation settings and twins are validated", () => {
  assert.deepEqual(checkAllocation({ policy: "hashed" }), { policy: "hashed" });
  assert.deepEqual(checkAllocation({ policy: "static", hub: "a" }), { policy: "static", hub: "a" });
  assert.equal(checkAllocation({ policy: "custom", webhook: { url: "https://alloc.example/x", secret: "0123456789abcdef" } }).webhook?.url, "https://alloc.example/x");
  for (const bad of [
    { policy: "lowest-latency" },
    { policy: "static" },
    { policy: "static", hub: "a", hubs: ["b"] },
    { policy: "hashed", hubs: [] },
    { policy: "custom", webhook: { url: "ftp://x", secret: "0123456789abcdef" } },
    { policy: "custom", webhook: { url: "https://x", secret: "short" } },
    { policy: "custom", webhook: { url: "https://x", secret: "0123456789abcdef", timeoutMs: 60_000 } },
    { policy: "hashed", extra: 1 },
  ]) {
    assert.throws(() => checkAllocation(bad), code("ERR_VALIDATION"), JSON.stringify(bad));
  }
  assert.deepEqual(checkTwin({ tags: { site: "x" }, properties: { desired: { a: 1 } } }), { tags: { site: "x" }, properties: { desired: { a: 1 } } });
  for (const bad of [[], { reported: {} }, { properties: { reported: {} } }, { tags: 1 }, { tags: { big: "x".repeat(40_000) } }]) assert.throws(() => checkTwin(bad), code("ERR_VALIDATION"));
});
