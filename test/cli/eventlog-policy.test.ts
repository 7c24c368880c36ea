import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "../helpers/cli.js";
import { expected, FIXTURES } from "../verify/eventlog/build.js";

const RHEL = FIXTURES + "rhel8-gce-uefi.bin";
const LAPTOP = FIXTURES + "laptop-startup-locality3.bin";
const WINDOWS = FIXTURES + "windows-option-rom-sha1.bin";

function tmp(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-eventlog-"));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("eventlog show: text and JSON", async () => {
  const text = await cli(["eventlog", "show", LAPTOP]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^format crypto-agile, banks sha1, sha256, 29 events\n/);
  assert.match(text.stdout, /\n {3}1 {2}PCR {2}0 {2}EV_NO_ACTION +sha256:0{16}… {2}StartupLocality 3\n/);
  const json = await cli(["eventlog", "show", WINDOWS, "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const j = json.json();
  assert.equal(j.format, "sha1");
  assert.equal(j.events.length, 61);
  assert.equal(j.events[43].decoded.devicePath.filePath, "\\EFI\\Microsoft\\Boot\\bootmgfw.efi");
  assert.equal(typeof j.events[43].digests.sha1, "string");
  assert.equal(j.interpretation.verified, false);
  assert.equal(j.interpretation.secureBoot.enabled, true);
  assert.equal(j.interpretation.windows.codeIntegrity, true);
  assert.match(j.interpretation.secureBoot.databases[2].certificates[1].subject, /Microsoft Windows Production PCA 2011/);
});

test("eventlog replay: PCR values per bank as the source project states", async () => {
  for (const [file, name] of [[RHEL, "rhel8-gce-uefi.bin"], [LAPTOP, "laptop-startup-locality3.bin"]]) {
    const r = await cli(["eventlog", "replay", file, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const pcrs = r.json().pcrs;
    for (const [bank, values] of Object.entries(expected[name].expected_pcrs)) {
      for (const [pcr, hex] of Object.entries(values)) assert.equal(pcrs[bank][pcr], hex, `${name} ${bank}:${pcr}`);
    }
  }
  const text = await cli(["eventlog", "replay", LAPTOP]);
  assert.match(text.stdout, /sha256:\n {3}0: 0e5ea849d7647a1ac1becc096fee4df98f00f8015f934afadaab0b8aa20b38a5\n/);
  assert.match(text.stdout, /startup locality 3\n/);
});

test("eventlog diff: same log exits 0; different logs exit 1 with meanings", async () => {
  const same = await cli(["eventlog", "diff", RHEL, RHEL]);
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stdout, /the logs measure the same events/);
  const diff = await cli(["eventlog", "diff", RHEL, LAPTOP]);
  assert.equal(diff.code, 1, diff.stderr);
  assert.match(diff.stdout, /^B differs from A: \d+ differences\n/);
  assert.match(diff.stdout, /PCR 7 record 7 EV_EFI_VARIABLE_DRIVER_CONFIG: Secure Boot disabled\n/);
  assert.match(diff.stdout, /PCR 7 record 10 EV_EFI_VARIABLE_DRIVER_CONFIG: db changed\n/);
  assert.match(diff.stdout, /not verified against a quote/);
  const json = await cli(["eventlog", "diff", RHEL, LAPTOP, "--json"]);
  assert.equal(json.code, 1);
  assert.equal(json.json().same, false);
});

test("eventlog: unusable input exits 2 with a stable code", async () => {
  const { dir, done } = tmp();
  try {
    const junk = join(dir, "junk.bin");
    writeFileSync(junk, "definitely not a TCG event log, just words and more words");
    const empty = join(dir, "empty.bin");
    writeFileSync(empty, "");
    const truncated = join(dir, "cut.bin");
    writeFileSync(truncated, readFileSync(RHEL).subarray(0, 5000));
    for (const f of [junk, empty, truncated]) {
      const r = await cli(["eventlog", "show", f]);
      assert.equal(r.code, 2, f);
      assert.match(r.stderr, /^error ERR_PARSE_EVENTLOG: .* at offset \d+\n$/);
    }
    const missing = await cli(["eventlog", "replay", join(dir, "nope.bin")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^error ERR_IO: /);
  } finally {
    done();
  }
});

test("policy baseline create (stdout and --out) and check: pass 0, fail 1 with a diff", async () => {
  const { dir, done } = tmp();
  try {
    const printed = await cli(["policy", "baseline", "create", "--name", "gce-n1", "--from", RHEL]);
    assert.equal(printed.code, 0, printed.stderr);
    const doc = printed.json();
    assert.equal(doc.kind, "tpmtrust.baseline");
    assert.equal(doc.version, 1);
    assert.deepEqual(Object.keys(doc.pcrs), ["0", "1", "2", "3", "4", "5", "6", "7"]);

    const out = join(dir, "baseline.json");
    const made = await cli(["policy", "baseline", "create", "--name", "gce-n1", "--from", RHEL, "--from", RHEL, "--pcrs", "0-9", "--out", out]);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(made.stdout, "");
    const saved = JSON.parse(readFileSync(out, "utf8"));
    assert.equal(saved.learnedFrom, 2);
    assert.deepEqual(Object.keys(saved.pcrs), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);

    const pass = await cli(["policy", "baseline", "check", "--baseline", out, "--log", RHEL]);
    assert.equal(pass.code, 0, pass.stdout + pass.stderr);
    assert.match(pass.stdout, /^PASS gce-n1\n/);

    const fail = await cli(["policy", "baseline", "check", "--baseline", out, "--log", LAPTOP]);
    assert.equal(fail.code, 1);
    assert.match(fail.stdout, /^FAIL gce-n1: \d+ differences\n/);
    assert.match(fail.stdout, /Secure Boot disabled/);
    assert.match(fail.stdout, /bootloader digest differs/);

    const failJson = await cli(["policy", "baseline", "check", "--baseline", out, "--log", LAPTOP, "--json"]);
    assert.equal(failJson.code, 1);
    const r = failJson.json();
    assert.equal(r.pass, false);
    assert.equal(r.verifiedAgainstQuote, false);
    assert.ok(r.diffs.some((d: { meaning: string; pcr: number }) => d.pcr === 7 && d.meaning === "dbx changed"));

    const tampered = join(dir, "tampered.json");
    writeFileSync(tampered, JSON.stringify({ ...saved, version: 99 }));
    const bad = await cli(["policy", "baseline", "check", "--baseline", tampered, "--log", RHEL]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error ERR_VALIDATION: baseline version 99 is not supported/);
    const notJson = await cli(["policy", "baseline", "check", "--baseline", RHEL, "--log", RHEL]);
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /^error ERR_PARSE_FORMAT: /);
    const badPcrs = await cli(["policy", "baseline", "create", "--name", "x", "--from", RHEL, "--pcrs", "0-99"]);
    assert.equal(badPcrs.code, 2);
    assert.match(badPcrs.stderr, /^error ERR_USAGE: /);
    const noFrom = await cli(["policy", "baseline", "create", "--name", "x"]);
    assert.equal(noFrom.code, 2);
  } finally {
    done();
  }
});

test("policy software create and check", async () => {
  const { dir, done } = tmp();
  try {
    const made = await cli(["policy", "software", "create", "--name", "rhel-8.3", "--from", RHEL]);
    assert.equal(made.code, 0, made.stderr);
    const p = made.json();
    assert.equal(p.kind, "tpmtrust.software");
    assert.deepEqual(p.bootloaders.map((b: { role: string }) => b.role), ["shim", "grub"]);
    assert.equal(p.kernels.length, 2);
    assert.equal(p.initrds.length, 1);
    const file = join(dir, "software.json");
    writeFileSync(file, made.stdout);
    const ok = await cli(["policy", "software", "check", "--policy", file, "--log", RHEL]);
    assert.equal(ok.code, 0, ok.stdout);
    const no = await cli(["policy", "software", "check", "--policy", file, "--log", LAPTOP]);
    assert.equal(no.code, 1);
    assert.match(no.stdout, /bootloader is not accepted software/);
  } finally {
    done();
  }
});
