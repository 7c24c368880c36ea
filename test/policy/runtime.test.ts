import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { importKeylime, importKeylimePolicy } from "../../src/policy/keylime.js";
import { checkRuntimePolicy, compileRuntimePolicy, emptyRuntimePolicy, learnRuntimePolicy, parseRuntimePolicy, type RuntimePolicy } from "../../src/policy/runtime.js";
import { parseImaList, type ImaList } from "../../src/verify/ima/index.js";
import { TpmTrustError } from "../../src/errors.js";
import { entry, FIXTURES, sha } from "../verify/ima-build.js";

const read = (f: string) => readFileSync(FIXTURES + f);
const lines = read("keylime-ima-sig.ascii").toString().trim().split("\n");
const MEASUREMENTS = lines.slice(0, 3);
const SIGNATURES = lines.slice(3, 5);
const KEYRINGS = lines.slice(5);
const list = (ls: string[]) => parseImaList(Buffer.from(ls.join("\n") + "\n"));
const openpower = () => JSON.parse(read("keylime-policy-openpower.json").toString());
const keylime = (doc: unknown) => compileRuntimePolicy(importKeylimePolicy(doc, "k"));
const pemKeys = ["keylime-rsa2048pub.pem", "keylime-secp256k1-pub.pem"].map((f) => read(f).toString());
const withKeys = (p: RuntimePolicy, keys = pemKeys) => compileRuntimePolicy({ ...p, keys });
const failing = (c: ReturnType<typeof keylime>, l: ImaList) => checkRuntimePolicy(c, l).failures.map((f) => `${f.index}:${f.code}`);

// The cases of Keylime's test/test_ima_verification.py, with the outcome Keylime's semantics give.
test("Keylime interop: measurements pass the policy that lists them, fail an empty one", () => {
  assert.deepEqual(failing(keylime(openpower()), list(MEASUREMENTS)), []);
  const empty = { meta: { version: 1, generator: 1 }, release: 0, digests: {}, excludes: [], keyrings: {}, ima: { ignored_keyrings: [], log_hash_alg: "sha1", dm_policy: null }, "ima-buf": {}, "verification-keys": "" };
  assert.deepEqual(failing(keylime(empty), list(MEASUREMENTS)), ["1:ERR_IMA_DIGEST_NOT_ALLOWED", "2:ERR_IMA_DIGEST_NOT_ALLOWED"]);
});

test("Keylime interop: signatures verified by trusted keys pass whatever the digests say; a missing key fails", () => {
  const wrong = { ...openpower(), digests: { "/usr/bin/dd": ["bad05d13792292e202dbf69a6f1b07bc8a02f01424db8489ba7bb7d43c0290ef"], "/usr/bin/zmore": ["bad00b8dd04a5935cd8165aa2260cd11b658bd71629bdb52256a675a1f73907b"] } };
  const sigs = list(SIGNATURES);
  assert.deepEqual(checkRuntimePolicy(withKeys(importKeylimePolicy(wrong, "k")), sigs).failures, []);
  assert.deepEqual(checkRuntimePolicy(withKeys(emptyRuntimePolicy("e")), sigs).failures, []);
  // only the RSA key: the ECDSA-signed zmore is not verified and its digest is wrong
  assert.deepEqual(failing(withKeys(importKeylimePolicy(wrong, "k"), [pemKeys[0]]), sigs), ["1:ERR_IMA_SIGNATURE_INVALID"]);
  // no key, but the right digests: passes
  assert.deepEqual(failing(keylime(openpower()), sigs), []);
  // Keylime's verification-keys (base64 DER SubjectPublicKeyInfo in a JSON string) import as trusted keys
  const spki = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, "");
  const vk = { ...wrong, "verification-keys": JSON.stringify({ pubkeys: pemKeys.map(spki), keyids: [4081397027, 1394556965] }) };
  assert.deepEqual(failing(keylime(vk), sigs), []);
});

test("Keylime interop: excludes are regular expressions matched at the start of the path", () => {
  const wrong = { ...openpower(), digests: {} };
  const ms = list(MEASUREMENTS);
  assert.deepEqual(failing(keylime({ ...wrong, excludes: ["boot_aggregate", "/lib/modules/5.4.48-openpower1/.*"] }), ms), []);
  assert.deepEqual(failing(keylime({ ...wrong, excludes: ["boot_aggregate", "/lib/modules"] }), ms), [], "a prefix is enough (re.match)");
  assert.deepEqual(failing(keylime({ ...wrong, excludes: ["boot_aggregate", "usb-common\\.ko"] }), ms), ["1:ERR_IMA_DIGEST_NOT_ALLOWED", "2:ERR_IMA_DIGEST_NOT_ALLOWED"], "not a search");
  assert.throws(() => keylime({ ...wrong, excludes: ["(unclosed"] }), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_VALIDATION");
});

test("ima-buf keys: allowed keyring digests are learned and then trusted; others fail; ignored keyrings pass", () => {
  const keyList = list(KEYRINGS);
  const state = { learnedKeys: [] as ReturnType<typeof compileRuntimePolicy>["keys"] };
  assert.deepEqual(checkRuntimePolicy(keylime(openpower()), keyList, state).failures, []);
  assert.equal(state.learnedKeys.length, 1);
  assert.deepEqual(failing(keylime({ ...openpower(), keyrings: {} }), keyList), ["0:ERR_IMA_KEY_NOT_ALLOWED"]);
  assert.deepEqual(failing(keylime({ ...openpower(), keyrings: {}, ima: { ignored_keyrings: [".ima"], log_hash_alg: "sha1", dm_policy: null } }), keyList), []);
  assert.deepEqual(failing(keylime({ ...openpower(), keyrings: {}, ima: { ignored_keyrings: ["*"], log_hash_alg: "sha1", dm_policy: null } }), keyList), []);
});

test("attack: an ima-buf entry whose allowed digest is not the hash of its key is not learned", () => {
  const real = parseImaList(Buffer.from(KEYRINGS[0] + "\n")).entries[0];
  const other = Buffer.from(pemKeys[0].replace(/-----[^-]+-----|\s/g, ""), "base64");
  const forged = entry({ template: "ima-buf", path: ".ima", digest: real.digest.digest, buf: other });
  const state = { learnedKeys: [] as ReturnType<typeof compileRuntimePolicy>["keys"] };
  const r = checkRuntimePolicy(keylime(openpower()), parseImaList(Buffer.from(forged.line + "\n")), state);
  assert.deepEqual(r.failures.map((f) => f.code), ["ERR_IMA_KEY_NOT_ALLOWED"]);
  assert.equal(state.learnedKeys.length, 0);
});

test("attack: a signature by an untrusted key, a measurement violation, a PCR other than 10, a wrong template hash", () => {
  const p = compileRuntimePolicy(emptyRuntimePolicy("e"));
  const sigs = list(SIGNATURES);
  assert.deepEqual(failing(p, sigs), ["0:ERR_IMA_SIGNATURE_INVALID", "1:ERR_IMA_SIGNATURE_INVALID"]);
  const violation = list([`10 ${"0".repeat(40)} ima-ng sha256:${"0".repeat(64)} /etc/shadow`]);
  assert.deepEqual(failing(p, violation), ["0:ERR_IMA_DIGEST_NOT_ALLOWED"]);
  assert.deepEqual(failing(compileRuntimePolicy({ ...emptyRuntimePolicy("e"), ignoreViolations: true }), violation), []);
  const pcr11 = entry({ path: "/x", digest: sha("sha256", "x"), pcr: 11 });
  assert.deepEqual(failing(p, list([pcr11.line])), ["0:ERR_IMA_PCR"]);
  const flipped = MEASUREMENTS[1].replace("f1125b94", "f1125b95");
  assert.deepEqual(failing(keylime(openpower()), list([flipped])), ["0:ERR_IMA_TEMPLATE_HASH_MISMATCH"]);
});

test("hash algorithms accepted; several digests per path; boot_aggregate judged by the policy only when it lists one", () => {
  const e1 = entry({ path: "/usr/bin/a", alg: "sha1", digest: sha("sha1", "a1") });
  const e2 = entry({ path: "/usr/bin/a", alg: "sha256", digest: sha("sha256", "a2") });
  const p: RuntimePolicy = { ...emptyRuntimePolicy("p"), digests: { "/usr/bin/a": [sha("sha1", "a1").toString("hex"), sha("sha256", "a2").toString("hex")] } };
  assert.deepEqual(failing(compileRuntimePolicy(p), list([e1.line, e2.line])), []);
  assert.deepEqual(failing(compileRuntimePolicy({ ...p, hashAlgorithms: ["sha256"] }), list([e1.line, e2.line])), ["0:ERR_IMA_HASH_ALG_NOT_ALLOWED"]);
  const boot = entry({ path: "boot_aggregate", digest: sha("sha256", "b") });
  const r = checkRuntimePolicy(compileRuntimePolicy(p), list([boot.line]));
  assert.equal(r.failures.length, 0);
  assert.match(r.notes.join(), /boot_aggregate not judged/);
  assert.deepEqual(failing(compileRuntimePolicy({ ...p, digests: { boot_aggregate: ["00".repeat(32)] } }), list([boot.line])), ["0:ERR_IMA_DIGEST_NOT_ALLOWED"]);
  assert.deepEqual(failing(compileRuntimePolicy(p), list([boot.line])), []);
  const judged = checkRuntimePolicy(compileRuntimePolicy(p), list([boot.line]), undefined, { bootAggregate: () => ({ ok: false, reason: "differs" }) });
  assert.deepEqual(judged.failures.map((f) => f.code), ["ERR_IMA_BOOT_AGGREGATE_MISMATCH"]);
});

test("Keylime legacy formats: flat allowlist with %keyring and sha256: prefixes, exclude list, JSON allowlist; the stored policy file", () => {
  const flat = importKeylime(read("keylime-allowlist-short.txt"), "flat", "# comment\n\n/tmp/.*\n");
  assert.deepEqual(flat.digests.boot_aggregate, ["4309217e9709def327c3409407f4d52907aeba46ef1b4f46529fd095f2ef9fb2"]);
  assert.equal(Object.keys(flat.digests).length, 21);
  assert.deepEqual(flat.keyrings, { ".ima": ["a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a"] });
  assert.deepEqual(flat.excludes, ["/tmp/.*"]);
  const fromJson = importKeylime(Buffer.from(JSON.stringify({ meta: { version: 0 }, hashes: { "/bin/x": ["ab".repeat(20)] } })), "j");
  assert.deepEqual(fromJson.digests, { "/bin/x": ["ab".repeat(20)] });
  const stored = importKeylime(read("keylime-runtime-policy-test.json"), "stored");
  assert.equal(Object.keys(stored.digests).length, 21);
  assert.ok(parseRuntimePolicy(JSON.parse(JSON.stringify(stored))));
  assert.throws(() => importKeylimePolicy({ ...openpower(), meta: { version: 2 } }, "k"), /format version 2/);
  assert.throws(() => importKeylimePolicy({ payload: "e30=", payloadType: "x", signatures: [] }, "k"), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_PARSE_UNSUPPORTED");
});

test("learned from a reference list, a policy passes that list and fails an unknown file; excludes leave paths out", () => {
  const ubuntu = parseImaList(read("ubuntu-ima-ng-sha1.ascii"));
  const p = learnRuntimePolicy("ubuntu", ubuntu, ["/tmp/"]);
  assert.deepEqual(checkRuntimePolicy(parseRuntimePolicy(JSON.parse(JSON.stringify(p))), ubuntu).failures, []);
  assert.ok(!Object.keys(p.digests).some((k) => k.startsWith("/tmp/")));
  const extra = entry({ path: "/usr/local/bin/miner", alg: "sha1", digest: sha("sha1", "miner") });
  assert.deepEqual(failing(compileRuntimePolicy(p), list([extra.line])), ["0:ERR_IMA_DIGEST_NOT_ALLOWED"]);
});
