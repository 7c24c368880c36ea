/**
 * Long CLI work: bulk EK allow-listing from every kind of source, and progress bars that appear on a
 * terminal (run under script(1), a real pty) and never in pipes.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cli } from "../helpers/cli.js";
import { identityOf, softHost } from "../helpers/software-fleet.js";

const BIN = fileURLToPath(new URL("../../bin/tpmtrust.js", import.meta.url));
const FIX = fileURLToPath(new URL("../fixtures/", import.meta.url));
const ROOTS = join(FIX, "manufacturer-roots", "keylime-tpm_cert_store");
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-progress-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI on a pseudo-terminal; returns everything the terminal showed, whatever the exit code. */
function onTty(args: string[]): string {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  return spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", env: { ...process.env, COLUMNS: "120" } }).stdout;
}

test("trust allowlist import: hash lists, AD CS folders, EK certificates and identity files; again: all present", async () => {
  const db = join(dir, "allow.db");
  const list = join(dir, "hashes.txt");
  writeFileSync(list, `# rack 4\n${"a1".repeat(32)}\n${"B2".repeat(32)}  # upper case is fine\n\n${"c3".repeat(32)}\n`);
  const folder = join(dir, "adcs");
  mkdirSync(folder);
  for (const h of ["d4".repeat(32), "e5".repeat(32)]) writeFileSync(join(folder, h), "");
  const cert = join(FIX, "ek-certs", "infineon_rsa_ek.der");
  const host = softHost("imported");
  const identity = join(dir, "host.json");
  writeFileSync(identity, JSON.stringify(identityOf(host)));

  const r = await cli(["trust", "allowlist", "import", list, folder, cert, identity, "--db", db, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.json();
  assert.equal(out.added.length, 7);
  assert.ok(out.added.includes(host.ekHash));
  assert.ok(out.added.includes("b2".repeat(32)));
  assert.equal(r.stderr, "", "no progress bar in a pipe");

  const again = await cli(["trust", "allowlist", "import", list, folder, cert, identity, "--db", db, "--json"]);
  assert.deepEqual(again.json(), { added: [], present: out.added });
  const listed = (await cli(["trust", "allowlist", "list", "--db", db, "--json"])).json();
  assert.equal(listed.entries.filter((e: { source: string }) => e.source === "db").length, 7);

  const junk = join(dir, "junk.txt");
  writeFileSync(junk, "not a hash\n");
  const bad = await cli(["trust", "allowlist", "import", junk, "--db", db]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /ERR_PARSE_FORMAT: .*junk\.txt: neither EK hashes/);
});

test("trust import shows a progress bar on a terminal, none in a pipe", async () => {
  const tty = onTty(["trust", "import", ROOTS, "--db", join(dir, "tty.db")]);
  assert.match(tty, /storing certificates \[/);
  assert.match(tty, /45\/45/);
  assert.match(tty, /45 added, 0 already present, 0 skipped/);
  const piped = await cli(["trust", "import", ROOTS, "--db", join(dir, "pipe.db")]);
  assert.equal(piped.code, 0, piped.stderr);
  assert.doesNotMatch(piped.stderr, /storing certificates/);
  assert.match(piped.stdout, /45 added/);
});

test("policy baseline create from many logs shows its progress; the baseline is unchanged by it", async () => {
  const logs = ["rhel8-gce-uefi.bin", "rhel8-gce-uefi.bin", "rhel8-gce-uefi.bin"].map((f) => join(FIX, "eventlogs", f));
  const out = join(dir, "baseline.json");
  const tty = onTty(["policy", "baseline", "create", "--name", "gce", ...logs.flatMap((l) => ["--from", l]), "--out", out]);
  assert.match(tty, /reading logs \[.*3\/3/s);
  const piped = await cli(["policy", "baseline", "create", "--name", "gce", ...logs.flatMap((l) => ["--from", l])]);
  assert.equal(piped.stderr, "");
  assert.deepEqual(JSON.parse(readFileSync(out, "utf8")), JSON.parse(piped.stdout));
});

test("hosts import registers a folder of identity files with a progress bar; failures are listed with their codes", async () => {
  const db = join(dir, "fleet.db");
  const folder = join(dir, "identities");
  mkdirSync(folder);
  const hosts = ["web-01", "web-02", "rogue-9"].map((n) => softHost(n));
  for (const h of hosts) writeFileSync(join(folder, `${h.name}.json`), JSON.stringify(identityOf(h)));
  // allow-list the EKs of two of them from their own identity files
  const allow = await cli(["trust", "allowlist", "import", join(folder, "web-01.json"), join(folder, "web-02.json"), "--db", db]);
  assert.equal(allow.code, 0, allow.stderr);

  const tty = onTty(["hosts", "import", folder, "--class", "gce-n1", "--policy-version", "v1", "--db", db]);
  assert.match(tty, /registering hosts \[.*3\/3/s);
  assert.match(tty, /registered\tweb-01\tek-key/);
  assert.match(tty, /failed\t.*rogue-9\.json\tERR_EK_NOT_ALLOWLISTED/);
  assert.match(tty, /2 registered, 1 failed/);

  const again = await cli(["hosts", "import", folder, "--class", "gce-n1", "--policy-version", "v1", "--db", db, "--json"]);
  assert.equal(again.code, 1);
  assert.deepEqual(again.json().failed.map((f: { code: string }) => f.code).sort(), ["ERR_CONFLICT", "ERR_CONFLICT", "ERR_EK_NOT_ALLOWLISTED"]);
  const listed = (await cli(["hosts", "list", "--db", db, "--json"])).json();
  assert.deepEqual(listed.map((h: { name: string }) => h.name), ["web-01", "web-02"]);
});
