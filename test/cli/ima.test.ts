import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "../helpers/cli.js";
import { FIXTURES, fold } from "../verify/ima-build.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-ima-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

test("ima replay --json: PCR 10 per bank in eventlog replay's shape, boot_aggregate; same for ASCII and binary", async () => {
  const a = await cli(["ima", "replay", FIXTURES + "keylime-ima-sig.ascii", "--json"]);
  assert.equal(a.code, 0, a.stderr);
  const j = a.json();
  const hashes = readFileSync(FIXTURES + "keylime-ima-sig.ascii", "utf8").trim().split("\n").map((l) => Buffer.from(l.split(" ")[1], "hex"));
  assert.equal(j.pcrs.sha1["10"], fold("sha1", hashes).toString("hex"));
  assert.deepEqual(Object.keys(j.pcrs), ["sha1", "sha256", "sha384", "sha512"]);
  assert.equal(j.bootAggregate, "sha256:e4cb9f5709c88376b5fc3743cd88e76b9aae8f3d992d845678de5215edb31216");
  const b = await cli(["ima", "replay", FIXTURES + "keylime-ima-sig.bin", "--json"]);
  assert.deepEqual(b.json().pcrs, j.pcrs);
  const text = await cli(["ima", "replay", FIXTURES + "ubuntu-ima-ng-sha1.bin"]);
  assert.match(text.stdout, /^format binary, template hashes sha1, 826 entries\nsha1: 10: [0-9a-f]{40}\n/);
});

test("ima replay: a wrong template hash exits 1 naming the entry; garbage and truncation exit 2", async () => {
  const bad = join(dir, "bad.ascii");
  writeFileSync(bad, readFileSync(FIXTURES + "keylime-ima-sig.ascii", "utf8").replace("5426cf30", "5426cf31"));
  const r = await cli(["ima", "replay", bad]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /entry 1 at offset \d+ \(\/lib\/modules\/.*usb-common\.ko\): template hash does not match/);
  const trunc = join(dir, "trunc.bin");
  writeFileSync(trunc, readFileSync(FIXTURES + "ubuntu-ima-ng-sha1.bin").subarray(0, 1000));
  const t = await cli(["ima", "replay", trunc]);
  assert.equal(t.code, 2);
  assert.match(t.stderr, /ERR_PARSE_TRUNCATED: IMA entry \d+ at offset \d+/);
  const g = await cli(["ima", "replay", FIXTURES + "PROVENANCE.md"]);
  assert.equal(g.code, 2);
  assert.match(g.stderr, /ERR_PARSE_IMA/);
});

test("ima check: exit 0 with a Keylime policy that allows every entry, 1 listing each failing entry, 2 on an unusable policy", async () => {
  const ok = await cli(["ima", "check", "--policy", FIXTURES + "keylime-policy-openpower.json", FIXTURES + "keylime-ima-sig.ascii", "--json"]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.equal(ok.json().pass, true);
  const learned = join(dir, "ubuntu.json");
  const c = await cli(["policy", "runtime", "create", "--from", FIXTURES + "ubuntu-ima-ng-sha1.bin", "--exclude", "/etc/", "--exclude", "/var/", "--out", learned]);
  assert.equal(c.code, 0, c.stderr);
  const fail = await cli(["ima", "check", "--policy", learned, FIXTURES + "keylime-ima-sig.ascii"]);
  assert.equal(fail.code, 1);
  assert.match(fail.stdout, /^FAIL: 5 of 6 entries not allowed\n/);
  assert.match(fail.stdout, /entry 3 \/usr\/bin\/dd sha256:d33d5d13[0-9a-f]+: ERR_IMA_SIGNATURE_INVALID no trusted IMA key has key id f3452d23; path is not in the policy/);
  const pass = await cli(["ima", "check", "--policy", learned, FIXTURES + "ubuntu-ima-ng-sha1.ascii", "--json"]);
  assert.equal(pass.code, 0, pass.stdout);
  assert.ok(pass.json().excluded > 0);
  const unusable = await cli(["ima", "check", "--policy", FIXTURES + "keylime-rsa2048pub.pem", FIXTURES + "keylime-ima-sig.ascii"]);
  assert.equal(unusable.code, 2, unusable.stderr);
});

test("policy runtime import --keylime: current JSON, legacy allowlist + exclude list", async () => {
  const out = join(dir, "imported.json");
  const r = await cli(["policy", "runtime", "import", "--keylime", FIXTURES + "keylime-policy-openpower.json", "--name", "openpower", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(readFileSync(out, "utf8"));
  assert.equal(doc.kind, "tpmtrust.runtime");
  assert.equal(doc.name, "openpower");
  assert.deepEqual(doc.keyrings[".ima"], ["a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a"]);
  const check = await cli(["ima", "check", "--policy", out, FIXTURES + "keylime-ima-sig.bin"]);
  assert.equal(check.code, 0, check.stdout);
  const excl = join(dir, "exclude.txt");
  writeFileSync(excl, "# Keylime exclude list\n/usr/bin/.*\n");
  const legacy = await cli(["policy", "runtime", "import", "--keylime", FIXTURES + "keylime-allowlist-short.txt", "--exclude-list", excl]);
  assert.equal(legacy.code, 0, legacy.stderr);
  assert.deepEqual(legacy.json().excludes, ["/usr/bin/.*"]);
  const bad = await cli(["policy", "runtime", "import", "--keylime", FIXTURES + "keylime-ima-sig.ascii"]);
  assert.equal(bad.code, 2);
});
