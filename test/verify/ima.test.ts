import { test } from "node:test";
import assert from "node:assert/strict";
import { constants, generateKeyPairSync, privateEncrypt } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  checkBootAggregate,
  encodeBinary,
  loadImaKey,
  matchQuotedPcr10,
  parseImaList,
  replayIma,
  templateHashMatches,
  verifyImaAgainstPcrs,
  verifyImaSignature,
} from "../../src/verify/ima/index.js";
import { TpmTrustError } from "../../src/errors.js";
import { entry, FIXTURES, fold, sha, sigField } from "./ima-build.js";

const read = (f: string) => readFileSync(FIXTURES + f);
const REAL = ["ubuntu-ima-ng-sha1", "keylime-ima-sig", "keylime-templates"];

const code = (c: string) => (e: unknown) => e instanceof TpmTrustError && e.code === c;

test("real kernels' lists: every template hash matches the data the parser reconstructs, in ASCII and binary", () => {
  const counts: Record<string, number> = { "ubuntu-ima-ng-sha1": 826, "keylime-ima-sig": 6, "keylime-templates": 3 };
  for (const f of REAL) {
    const a = parseImaList(read(f + ".ascii"));
    const b = parseImaList(read(f + ".bin"));
    assert.equal(a.format, "ascii");
    assert.equal(b.format, "binary");
    assert.equal(a.entries.length, counts[f]);
    assert.equal(b.entries.length, counts[f]);
    for (const [i, e] of a.entries.entries()) {
      assert.ok(templateHashMatches(e, "sha1"), `${f} entry ${i}`);
      assert.ok(b.entries[i].hashed.equals(e.hashed), `${f} entry ${i}: binary and ASCII template data differ`);
      assert.equal(b.entries[i].path, e.path);
    }
  }
  const t = parseImaList(read("keylime-templates.ascii")).entries;
  assert.deepEqual(t.map((e) => e.template), ["ima-buf", "ima", "ima-ng"]);
  assert.equal(t[1].path, "/usr/bin/kmod");
  assert.equal(t[1].hashed.length, 20 + 256, "the ima template hashes the name padded to 256 bytes");
  assert.equal(t[0].path, "device_resume");
  const u = parseImaList(read("ubuntu-ima-ng-sha1.ascii")).entries;
  assert.equal(u[0].path, "boot_aggregate");
  assert.equal(u[3].path, "/lib/x86_64-linux-gnu/ld-2.23.so");
  assert.equal(u[3].digest.alg, "sha1");
});

test("replay: SHA-1 bank folds the listed template hashes; other banks the bank's hash of the template data", () => {
  const list = parseImaList(read("keylime-ima-sig.ascii"));
  const lines = read("keylime-ima-sig.ascii").toString().trim().split("\n");
  const r = replayIma(list, ["sha1", "sha256"]);
  assert.deepEqual(r.pcrs.sha1[10], fold("sha1", lines.map((l) => Buffer.from(l.split(" ")[1], "hex"))));
  assert.deepEqual(r.pcrs.sha256[10], fold("sha256", list.entries.map((e) => sha("sha256", e.hashed))));
  const padded = (h: Buffer) => Buffer.concat([h, Buffer.alloc(12)]);
  assert.deepEqual(r.paddedSha1.sha256[10], fold("sha256", lines.map((l) => padded(Buffer.from(l.split(" ")[1], "hex")))));
  // incremental: replaying the rest from the running value of the first part gives the same value
  const first = { ...list, entries: list.entries.slice(0, 2) };
  const rest = { ...list, entries: list.entries.slice(2) };
  const part = replayIma(first, ["sha1", "sha256"]);
  assert.deepEqual(replayIma(rest, ["sha1", "sha256"], part).pcrs, r.pcrs);
});

test("quote match: covers the prefix the quote saw; entries appended after it are tolerated; reordering is not", () => {
  const list = parseImaList(read("ubuntu-ima-ng-sha1.ascii"));
  const at500 = replayIma({ ...list, entries: list.entries.slice(0, 500) }, ["sha1", "sha256"]).pcrs;
  const m = matchQuotedPcr10(list.entries, "sha1", { sha1: at500.sha1[10], sha256: at500.sha256[10] });
  assert.equal(m?.covered, 500);
  assert.deepEqual(m?.workarounds, []);
  const reordered = [...list.entries];
  [reordered[10], reordered[11]] = [reordered[11], reordered[10]];
  assert.equal(matchQuotedPcr10(reordered, "sha1", { sha1: at500.sha1[10] }), undefined);
  assert.throws(() => verifyImaAgainstPcrs({ ...list, entries: reordered }, { sha1: { 10: at500.sha1[10] } }), code("ERR_IMA_REPLAY_MISMATCH"));
  // from the running value of the first 100: the next increment
  const at100 = replayIma({ ...list, entries: list.entries.slice(0, 100) }, ["sha256"]).pcrs.sha256[10];
  assert.equal(matchQuotedPcr10(list.entries.slice(100), "sha1", { sha256: at500.sha256[10] }, { sha256: at100 })?.covered, 400);
});

test("quote match: a SHA-256 bank extended with the zero-padded SHA-1 template hash is the named workaround", () => {
  const list = parseImaList(read("keylime-ima-sig.ascii"));
  const r = replayIma(list, ["sha1", "sha256"]);
  const m = matchQuotedPcr10(list.entries, "sha1", { sha1: r.pcrs.sha1[10], sha256: r.paddedSha1.sha256[10] });
  assert.equal(m?.covered, 6);
  assert.deepEqual(m?.workarounds.map((w) => [w.name, w.bank]), [["ima-padded-sha1-template-hash", "sha256"]]);
});

test("negative twins: flipped digest (template hash no longer matches), truncated binary, unknown template", () => {
  const text = read("keylime-ima-sig.ascii").toString();
  const flipped = text.replace("d33d5d13", "d33d5d14");
  const list = parseImaList(Buffer.from(flipped));
  assert.equal(list.entries.filter((e) => !templateHashMatches(e, "sha1")).map((e) => e.index).join(), "3");
  const r = replayIma(parseImaList(Buffer.from(text)), ["sha1"]).pcrs.sha1;
  assert.throws(() => verifyImaAgainstPcrs(list, { sha1: r }), code("ERR_IMA_TEMPLATE_HASH_MISMATCH"));

  const bin = read("ubuntu-ima-ng-sha1.bin");
  assert.throws(
    () => parseImaList(bin.subarray(0, bin.length - 5)),
    (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_PARSE_TRUNCATED" && (e.details?.index as number) === 825 && typeof e.details?.offset === "number",
  );
  const unknown = Buffer.from(read("ubuntu-ima-ng-sha1.bin"));
  const second = parseImaList(unknown).entries[1].offset;
  unknown.write("imx-ng", second + 4 + 20 + 4, "latin1");
  assert.throws(() => parseImaList(unknown), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_PARSE_IMA_TEMPLATE" && e.details?.offset === second && e.details?.template === "imx-ng");
  assert.throws(() => parseImaList(Buffer.from("10 " + "a".repeat(40) + " not-ima sha1:00 /x\n")), code("ERR_PARSE_IMA_TEMPLATE"));
  assert.throws(() => parseImaList(Buffer.from("garbage that is not a list")), code("ERR_PARSE_IMA"));
});

test("custom template formats (ima_template_fmt) of known fields parse; a per-bank SHA-256 list is detected", () => {
  const e = entry({ path: "/bin/true", digest: sha("sha256", "x") });
  const custom = Buffer.from(e.binary);
  // rename the template to its field list: same data, name "d-ng|n-ng"
  const name = Buffer.from("d-ng|n-ng");
  const rec = Buffer.concat([custom.subarray(0, 24), Buffer.from([name.length, 0, 0, 0]), name, custom.subarray(24 + 4 + 6)]);
  const l = parseImaList(rec);
  assert.deepEqual(l.entries[0].fields, ["d-ng", "n-ng"]);
  assert.equal(l.entries[0].path, "/bin/true");
  // binary_runtime_measurements_sha256: 32-byte template hashes
  const t256 = sha("sha256", e.templateData);
  const n = Buffer.from("ima-ng");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(e.templateData.length);
  const rec256 = Buffer.concat([Buffer.from([10, 0, 0, 0]), t256, Buffer.from([n.length, 0, 0, 0]), n, len, e.templateData]);
  const l256 = parseImaList(rec256);
  assert.equal(l256.templateHashAlg, "sha256");
  assert.ok(templateHashMatches(l256.entries[0], "sha256"));
  assert.deepEqual(replayIma(l256, ["sha256"]).pcrs.sha256[10], fold("sha256", [t256]));
  assert.deepEqual(encodeBinary(l256.entries), rec256);
});

test("violations: zero template hash, PCR extended with all ones in every bank", () => {
  const line = `10 ${"0".repeat(40)} ima-ng sha256:${"0".repeat(64)} /var/log/opened-for-write`;
  const l = parseImaList(Buffer.from(line + "\n"));
  assert.equal(l.entries[0].violation, true);
  const r = replayIma(l, ["sha1", "sha256"]);
  assert.deepEqual(r.pcrs.sha1[10], fold("sha1", [Buffer.alloc(20, 0xff)]));
  assert.deepEqual(r.pcrs.sha256[10], fold("sha256", [Buffer.alloc(32, 0xff)]));
});

test("boot_aggregate: SHA-1 and SHA-256 over PCRs 0-7, and 0-9 on newer kernels; a mismatch is named", () => {
  const pcrs = (alg: string) => Object.fromEntries(Array.from({ length: 10 }, (_, i) => [i, sha(alg, `pcr${i}-${alg}`)]));
  const quoted = { sha1: pcrs("sha1"), sha256: pcrs("sha256") };
  const cat = (alg: string, n: number) => sha(alg, Buffer.concat(Array.from({ length: n }, (_, i) => quoted[alg as "sha1"][i])));
  for (const [alg, n, form] of [["sha1", 8, "sha1 PCRs 0-7"], ["sha256", 8, "sha256 PCRs 0-7"], ["sha256", 10, "sha256 PCRs 0-9"]] as const) {
    const l = parseImaList(Buffer.from(entry({ path: "boot_aggregate", alg, digest: cat(alg, n) }).line + "\n"));
    assert.deepEqual(checkBootAggregate(l.entries[0], quoted), { ok: true, form });
  }
  const bad = parseImaList(Buffer.from(entry({ path: "boot_aggregate", alg: "sha256", digest: sha("sha256", "other") }).line + "\n"));
  assert.equal(checkBootAggregate(bad.entries[0], quoted).ok, false);
  const r = replayIma(bad, ["sha256"]).pcrs.sha256;
  assert.throws(() => verifyImaAgainstPcrs(bad, { sha256: { ...quoted.sha256, 10: r[10] } }), code("ERR_IMA_BOOT_AGGREGATE_MISMATCH"));
  const zero = parseImaList(read("ubuntu-ima-ng-sha1.ascii")).entries[0];
  assert.match(checkBootAggregate(zero, quoted).reason ?? "", /without a TPM/);
});

test("signatures: the real RSA and ECDSA (secp256k1) ima-sig entries verify with their keys, and only with them", () => {
  const keys = ["keylime-rsa2048pub.pem", "keylime-secp256k1-pub.pem"].map((f) => loadImaKey(read(f)));
  assert.deepEqual(keys.map((k) => k.keyIds[0]), ["f3452d23", "531f4025"]);
  const [dd, zmore] = parseImaList(read("keylime-ima-sig.ascii")).entries.filter((e) => e.sig);
  assert.equal(verifyImaSignature(dd.sig!, dd.digest, keys).ok, true);
  assert.equal(verifyImaSignature(zmore.sig!, zmore.digest, keys).ok, true);
  assert.equal(verifyImaSignature(zmore.sig!, zmore.digest, [keys[0]]).ok, false);
  const other = { ...dd.digest, digest: sha("sha256", "not dd") };
  assert.match(verifyImaSignature(dd.sig!, other, keys).reason ?? "", /does not verify/);
  // a key that claims the trusted key's id but is another key
  const rogue = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const di = Buffer.concat([Buffer.from("3031300d060960864801650304020105000420", "hex"), dd.digest.digest]);
  const forged = sigField(4, Buffer.from("f3452d23", "hex"), privateEncrypt({ key: rogue.privateKey, padding: constants.RSA_PKCS1_PADDING }, di));
  assert.equal(verifyImaSignature(forged, dd.digest, keys).ok, false);
  assert.equal(verifyImaSignature(forged, dd.digest, [{ ...loadImaKey(rogue.publicKey.export({ type: "spki", format: "pem" }) as string), keyIds: ["f3452d23"] }]).ok, true);
});
