import { test } from "node:test";
import assert from "node:assert/strict";
import { isTpmTrustError } from "../../src/errors.js";
import { evaluateBaseline, formatResult, learnBaseline, parseBaseline, parsePcrList, type Baseline } from "../../src/policy/index.js";
import { parseEventLog, selfVerifyEventLog, verifyEventLog, type EventLog } from "../../src/verify/eventlog/index.js";
import { fixture, quotedOf, split } from "../verify/eventlog/build.js";

const RHEL = "rhel8-gce-uefi.bin";
const LAPTOP = "laptop-startup-locality3.bin";
const log = (name: string) => parseEventLog(fixture(name));
const PCRS_0_9 = parsePcrList("0-9");

/** The RHEL log with record `i`'s digests replaced in every bank (a different measurement, still a consistent log). */
function withDigestChanged(i: number, fill = 0x5a): Buffer {
  const bytes = fixture(RHEL);
  const l = parseEventLog(bytes);
  const recs = split(bytes, l.events.map((e) => e.offset)).map((r) => Buffer.from(r));
  let at = 12; // pcr, type, count
  for (const alg of l.algorithms) {
    recs[i].fill(fill, at + 2, at + 2 + alg.digestSize);
    at += 2 + alg.digestSize;
  }
  return Buffer.concat(recs);
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isTpmTrustError(e));
    return e.code;
  }
  assert.fail("expected an error");
}

test("PCR lists", () => {
  assert.deepEqual(parsePcrList("0-7"), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(parsePcrList("7, 0,2-3"), [0, 2, 3, 7]);
  for (const bad of ["", "0-24", "5-3", "a", "1,,2"]) assert.equal(code(() => parsePcrList(bad)), "ERR_USAGE");
});

test("a baseline learned from a log passes that log verified against its quote", () => {
  const b = learnBaseline("gce-n1", [log(RHEL)], PCRS_0_9);
  assert.equal(b.version, 1);
  assert.deepEqual(Object.keys(b.pcrs), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  assert.deepEqual(b.banks, ["sha1", "sha256", "sha384"]);
  assert.ok(Object.values(b.pcrs).every((p) => p.variants.length === 1 && p.variants[0].every((e) => e.match === "exact")));
  // the document survives JSON and strict validation
  const doc = parseBaseline(JSON.parse(JSON.stringify(b)));
  const quoted = quotedOf(RHEL);
  const r = evaluateBaseline(doc, verifyEventLog(fixture(RHEL), quoted));
  assert.deepEqual(r, { pass: true, policy: "gce-n1", diffs: [] });
});

test("what may vary: a digest that differs between reference logs is learned as 'any'", () => {
  const i = 65; // "grub_cmd set boot_success=0" in PCR 8
  const other = parseEventLog(withDigestChanged(i));
  const b = learnBaseline("gce-n1", [log(RHEL), other], PCRS_0_9);
  assert.equal(b.learnedFrom, 2);
  const pcr8 = b.pcrs["8"].variants;
  assert.equal(pcr8.length, 1);
  const varying = pcr8[0].filter((e) => e.match === "any");
  assert.equal(varying.length, 1);
  assert.equal(varying[0].digests, undefined);
  // a third value there still passes; the same change elsewhere does not
  assert.equal(evaluateBaseline(b, selfVerifyEventLog(parseEventLog(withDigestChanged(i, 0x33)))).pass, true);
  const elsewhere = evaluateBaseline(b, selfVerifyEventLog(parseEventLog(withDigestChanged(64))));
  assert.equal(elsewhere.pass, false);
  assert.deepEqual(elsewhere.diffs.map((d) => [d.pcr, d.kind, d.record, d.meaning]), [[8, "differs", 64, "GRUB command differs"]]);
});

test("reference logs with different event sequences become variants; either passes", () => {
  const recs = split(fixture(RHEL), log(RHEL).events.map((e) => e.offset));
  const extra = Buffer.concat([...recs.slice(0, 70), recs[70], ...recs.slice(70)]); // one GRUB command twice
  const b = learnBaseline("gce", [log(RHEL), parseEventLog(extra)], PCRS_0_9);
  assert.equal(b.pcrs["8"].variants.length, 2);
  assert.equal(b.pcrs["7"].variants.length, 1);
  assert.equal(evaluateBaseline(b, selfVerifyEventLog(log(RHEL))).pass, true);
  assert.equal(evaluateBaseline(b, selfVerifyEventLog(parseEventLog(extra))).pass, true);
});

test("a different host fails with human-readable meanings", () => {
  const b = learnBaseline("gce-n1", [log(RHEL)], parsePcrList("0-7"));
  const r = evaluateBaseline(b, verifyEventLog(fixture(LAPTOP), quotedOf(LAPTOP)));
  assert.equal(r.pass, false);
  const meanings = new Set(r.diffs.map((d) => d.meaning));
  for (const m of ["Secure Boot disabled", "PK changed", "KEK changed", "db changed", "dbx changed", "bootloader digest differs", "partition table changed", "firmware changed"]) {
    assert.ok(meanings.has(m), `missing meaning "${m}" in ${[...meanings].join(" | ")}`);
  }
  const sb = r.diffs.find((d) => d.meaning === "Secure Boot disabled")!;
  assert.deepEqual([sb.pcr, sb.kind, sb.type, sb.record], [7, "differs", "EV_EFI_VARIABLE_DRIVER_CONFIG", 7]);
  assert.deepEqual(Object.keys(sb.expected as object), ["sha1", "sha256"]);
  assert.ok(r.diffs.some((d) => d.kind === "missing" && d.meaning === 'expected "Exit Boot Services Invocation" is missing'));
  assert.ok(r.diffs.some((d) => d.kind === "unexpected" && d.pcr === 2 && d.type === "EV_EFI_BOOT_SERVICES_DRIVER"));
  const text = formatResult(r);
  assert.match(text, /^FAIL gce-n1: \d+ differences\n/);
  assert.match(text, /PCR 7 record 7 EV_EFI_VARIABLE_DRIVER_CONFIG: Secure Boot disabled\n {4}expected sha1:d4fdd1f1/);
});

test("a quote that does not cover a baseline PCR fails: unverified events are never judged", () => {
  const b = learnBaseline("gce", [log(RHEL)], parsePcrList("0-7"));
  const quoted = quotedOf(RHEL);
  delete quoted.sha1[4];
  delete quoted.sha256[4];
  const r = evaluateBaseline(b, verifyEventLog(fixture(RHEL), quoted));
  assert.deepEqual(r.diffs.map((d) => [d.pcr, d.kind]), [[4, "pcr-not-verified"]]);
});

test("events in a selected PCR the reference logs left empty are unexpected", () => {
  const b = learnBaseline("gce", [log(RHEL)], [10, 14]);
  assert.deepEqual(b.pcrs["10"].variants, [[]]);
  const r = evaluateBaseline(b, selfVerifyEventLog(log(RHEL)));
  assert.equal(r.pass, true);
  const onlyPcr0: Baseline = learnBaseline("p0", [log(LAPTOP)], [0]);
  const bad = evaluateBaseline(onlyPcr0, selfVerifyEventLog(log(RHEL)));
  assert.ok(bad.diffs.some((d) => d.kind === "unexpected" && d.type === "EV_NONHOST_INFO"));
});

test("baseline documents: strict schema and version", () => {
  const b = JSON.parse(JSON.stringify(learnBaseline("gce", [log(LAPTOP)], [0, 7])));
  assert.equal(code(() => parseBaseline({ ...b, version: 2 })), "ERR_VALIDATION");
  assert.equal(code(() => parseBaseline({ ...b, extra: 1 })), "ERR_VALIDATION");
  assert.equal(code(() => parseBaseline({ ...b, learnedFrom: "1" })), "ERR_VALIDATION");
  assert.equal(code(() => parseBaseline({ ...b, pcrs: { "24": { variants: [[]] } } })), "ERR_VALIDATION");
  const bad = structuredClone(b);
  bad.pcrs["7"].variants[0][0].digests.sha256 = "XYZ";
  try {
    parseBaseline(bad);
    assert.fail("accepted a non-hex digest");
  } catch (e) {
    assert.ok(isTpmTrustError(e) && e.code === "ERR_VALIDATION");
    assert.match(e.message, /\$\.pcrs\.7\.variants\[0\]\[0\]\.digests\.sha256: does not match/);
  }
  assert.equal(code(() => learnBaseline("bad name/../x", [log(LAPTOP)], [0])), "ERR_VALIDATION");
  assert.equal(code(() => learnBaseline("x", [], [0])), "ERR_USAGE");
});

test("logs without a bank in common cannot make a baseline", () => {
  const sha1Only: EventLog = log("windows-option-rom-sha1.bin");
  const sha256Only = log("four-banks-incl-sha512.bin");
  sha256Only.algorithms = sha256Only.algorithms.filter((a) => a.bank === "sha256");
  assert.equal(code(() => learnBaseline("x", [sha1Only, sha256Only], [0])), "ERR_USAGE");
});
