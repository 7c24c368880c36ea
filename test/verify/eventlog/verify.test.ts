import { test } from "node:test";
import assert from "node:assert/strict";
import { isTpmTrustError, type TpmTrustError } from "../../../src/errors.js";
import { parseEventLog, replayEventLog, verifyEventLog, type PcrValues } from "../../../src/verify/eventlog/index.js";
import { agileRecord, ALG, expected, fixture, h, LOGS, quotedOf, specId03, split } from "./build.js";

function rejection(fn: () => unknown): TpmTrustError {
  try {
    fn();
  } catch (e) {
    assert.ok(isTpmTrustError(e), `not a TpmTrustError: ${e}`);
    return e;
  }
  assert.fail("expected a rejection");
}

const hex = (v: PcrValues) => Object.fromEntries(Object.entries(v).map(([b, p]) => [b, Object.fromEntries(Object.entries(p).map(([i, x]) => [i, x.toString("hex")]))]));

for (const name of LOGS) {
  test(`${name}: replays exactly to the PCR values its source states`, () => {
    const replay = replayEventLog(parseEventLog(fixture(name)));
    const got = hex(replay.pcrs);
    for (const [bank, pcrs] of Object.entries(expected[name].expected_pcrs)) {
      for (const [pcr, value] of Object.entries(pcrs)) assert.equal(got[bank]?.[pcr], value, `${bank} PCR ${pcr}`);
    }
    assert.deepEqual(replay.unsupportedBanks, []);
    assert.deepEqual(replay.incomplete, []);
  });

  test(`${name}: verifies against its quoted PCRs and returns only their events`, () => {
    const quoted = quotedOf(name);
    const log = parseEventLog(fixture(name));
    const v = verifyEventLog(log, quoted);
    const quotedPcrs = new Set(Object.values(quoted).flatMap((p) => Object.keys(p).map(Number)));
    assert.equal(v.explained.length, Object.values(quoted).reduce((n, p) => n + Object.keys(p).length, 0));
    assert.deepEqual(v.unexplained, []);
    assert.deepEqual(v.workarounds, []);
    assert.ok(v.events.length > 0);
    for (const ev of v.events) {
      assert.ok(quotedPcrs.has(ev.pcr), `event of unquoted PCR ${ev.pcr}`);
      assert.notEqual(ev.typeName, "EV_NO_ACTION");
      for (const bank of Object.keys(ev.digests)) assert.ok(quoted[bank]?.[ev.pcr], `digest of unverified bank ${bank}`);
    }
    const expectedCount = log.events.filter((e) => e.type !== 3 && quotedPcrs.has(e.pcr)).length;
    assert.equal(v.events.length, expectedCount);
  });
}

test("only the quoted bank's digests are handed out", () => {
  const quoted = { sha256: quotedOf("rhel8-gce-uefi.bin").sha256 };
  const v = verifyEventLog(fixture("rhel8-gce-uefi.bin"), quoted);
  for (const ev of v.events) assert.deepEqual(Object.keys(ev.digests), ["sha256"]);
});

test("StartupLocality 3 makes PCR 0 start at 00…03", () => {
  const log = parseEventLog(fixture("laptop-startup-locality3.bin"));
  assert.equal(replayEventLog(log).startupLocality, 3);
  const v = verifyEventLog(log, quotedOf("laptop-startup-locality3.bin"));
  assert.equal(v.startupLocality, 3);
  // without the locality event PCR 0 no longer replays
  const recs = split(fixture("laptop-startup-locality3.bin"), log.events.map((e) => e.offset));
  const noLocality = Buffer.concat([recs[0], ...recs.slice(2)]);
  const e = rejection(() => verifyEventLog(noLocality, { sha256: { 0: quotedOf("laptop-startup-locality3.bin").sha256[0] } }));
  assert.equal(e.code, "ERR_EVENTLOG_REPLAY_MISMATCH");
  assert.equal(e.details?.pcr, 0);
});

test("a StartupLocality event after PCR 0 was extended is rejected", () => {
  const loc = Buffer.concat([Buffer.from("StartupLocality\0", "latin1"), Buffer.from([3])]);
  const log = Buffer.concat([specId03([{ alg: ALG.sha256 }]), agileRecord(0, 8, Buffer.from("v"), [ALG.sha256]), agileRecord(0, 3, loc, [[ALG.sha256, Buffer.alloc(32)]])]);
  const e = rejection(() => replayEventLog(parseEventLog(log)));
  assert.equal(e.code, "ERR_PARSE_EVENTLOG");
  assert.equal(e.details?.record, 2);
});

test("quoted PCRs the log cannot explain are named with a reason", () => {
  const name = "rhel8-gce-uefi.bin";
  const quoted: PcrValues = {
    sha256: { 0: quotedOf(name).sha256[0], 10: Buffer.alloc(32, 0xaa), 11: Buffer.alloc(32), 17: Buffer.alloc(32, 0xff) },
    sha512: { 0: Buffer.alloc(64) },
  };
  const v = verifyEventLog(fixture(name), quoted);
  assert.deepEqual(
    v.explained.map((e) => [e.bank, e.pcr, e.events]),
    [["sha256", 0, 3], ["sha256", 11, 0], ["sha256", 17, 0]],
  );
  assert.deepEqual(
    v.unexplained.map((u) => [u.bank, u.pcr, u.reason]),
    [["sha256", 10, "no-events"], ["sha512", 0, "bank-not-in-log"]],
  );
  assert.ok(v.events.every((e) => e.pcr === 0));
});

test("a PCR whose events lack a bank's digest is unexplained in that bank", () => {
  const log = Buffer.concat([specId03([{ alg: ALG.sha1 }, { alg: ALG.sha256 }]), agileRecord(3, 8, Buffer.from("x"), [ALG.sha1])]);
  const r = replayEventLog(parseEventLog(log));
  assert.deepEqual(r.incomplete, [{ bank: "sha256", pcr: 3, record: 1 }]);
  const sha1 = r.pcrs.sha1[3];
  const v = verifyEventLog(log, { sha1: { 3: sha1 }, sha256: { 3: Buffer.alloc(32) } });
  assert.deepEqual(v.unexplained.map((u) => [u.bank, u.reason]), [["sha256", "incomplete-digests"]]);
  assert.deepEqual(v.explained.map((e) => e.bank), ["sha1"]);
});

// ---- tampering: each with its stable code, bank, PCR and divergence --------------------------------------------------

const RHEL = "rhel8-gce-uefi.bin";

function records(name: string) {
  const bytes = fixture(name);
  const log = parseEventLog(bytes);
  return { log, recs: split(bytes, log.events.map((e) => e.offset)) };
}

test("flipped digest: mismatch in that bank and PCR, pointed at the event", () => {
  const { log, recs } = records(RHEL);
  const i = 5; // KEK in PCR 7
  const rec = Buffer.from(recs[i]);
  rec[12 + 2 + 20 + 2 + 5] ^= 1; // a byte of the sha256 digest (after pcr, type, count, sha1 alg+digest, sha256 alg)
  const tampered = Buffer.concat([...recs.slice(0, i), rec, ...recs.slice(i + 1)]);
  const e = rejection(() => verifyEventLog(tampered, quotedOf(RHEL)));
  assert.equal(e.code, "ERR_EVENTLOG_REPLAY_MISMATCH");
  assert.equal(e.details?.bank, "sha256");
  assert.equal(e.details?.pcr, 7);
  assert.equal(e.details?.record, i);
  assert.equal(e.details?.offset, log.events[i].offset);
  const m = (e.details?.mismatches as { bank: string; divergence: { reason: string } }[])[0];
  assert.match(m.divergence.reason, /not the hash of its event data/);
});

test("removed event: mismatch in its PCR in every bank", () => {
  const { recs } = records(RHEL);
  const i = 30; // a GRUB command in PCR 8
  const e = rejection(() => verifyEventLog(Buffer.concat([...recs.slice(0, i), ...recs.slice(i + 1)]), quotedOf(RHEL)));
  assert.equal(e.code, "ERR_EVENTLOG_REPLAY_MISMATCH");
  assert.equal(e.details?.pcr, 8);
  const mm = e.details?.mismatches as { bank: string; pcr: number; divergence: { reason: string } }[];
  assert.deepEqual(mm.map((m) => [m.bank, m.pcr]), [["sha1", 8], ["sha256", 8]]);
  assert.match(mm[0].divergence.reason, /missing, altered or out of order/);
});

test("reordered events within one PCR: mismatch", () => {
  const { recs } = records(RHEL);
  const swapped = [...recs];
  [swapped[28], swapped[29]] = [swapped[29], swapped[28]];
  const e = rejection(() => verifyEventLog(Buffer.concat(swapped), quotedOf(RHEL)));
  assert.equal(e.code, "ERR_EVENTLOG_REPLAY_MISMATCH");
  assert.equal(e.details?.pcr, 8);
});

test("a quote taken before the log's last events: divergence at the first event it does not reflect", () => {
  const { log } = records(RHEL);
  const pcr5 = log.events.filter((e) => e.pcr === 5 && e.type !== 3);
  const before = parseEventLog(fixture(RHEL));
  before.events = before.events.filter((e) => e.index !== pcr5.at(-1)!.index);
  const earlier = replayEventLog(before).pcrs.sha256[5];
  const e = rejection(() => verifyEventLog(log, { sha256: { 5: earlier } }));
  assert.equal(e.details?.record, pcr5.at(-1)!.index);
  assert.match(e.message, /does not reflect record 82/);
});

test("truncated, empty and junk logs: ERR_PARSE_EVENTLOG", () => {
  const rhel = fixture(RHEL);
  for (const bytes of [rhel.subarray(0, rhel.length - 7), Buffer.alloc(0), Buffer.from("PK\x03\x04 not an event log at all, a zip file header")]) {
    const e = rejection(() => verifyEventLog(bytes, quotedOf(RHEL)));
    assert.equal(e.code, "ERR_PARSE_EVENTLOG");
    assert.equal(typeof e.details?.offset, "number");
  }
});

test("missing ExitBootServices events in PCR 5: named workaround, reported, never silent", () => {
  const { log, recs } = records(RHEL);
  const ebs = new Set(log.events.filter((e) => e.pcr === 5 && e.type === 0x80000007).map((e) => e.index));
  assert.equal(ebs.size, 2);
  const stripped = Buffer.concat(recs.filter((_, i) => !ebs.has(i)));
  const v = verifyEventLog(stripped, quotedOf(RHEL));
  assert.deepEqual(
    v.workarounds.map((w) => [w.name, w.bank, w.pcr]),
    [["missing-exit-boot-services-events", "sha1", 5], ["missing-exit-boot-services-events", "sha256", 5]],
  );
  assert.equal(v.explained.find((x) => x.pcr === 5 && x.bank === "sha256")?.workaround, "missing-exit-boot-services-events");
  // the firmware's unlogged extends are not handed out as events
  assert.equal(v.events.filter((e) => e.pcr === 5).length, 2);
  // a log that still has the invocation event gets no workaround
  const onlySuccess = Buffer.concat(recs.filter((_, i) => i !== Math.max(...ebs)));
  assert.equal(rejection(() => verifyEventLog(onlySuccess, quotedOf(RHEL))).code, "ERR_EVENTLOG_REPLAY_MISMATCH");
});

test("EV_NO_ACTION and PCR >= 24 events are never extended", () => {
  const data = Buffer.from("x");
  const log = Buffer.concat([
    specId03([{ alg: ALG.sha256 }]),
    agileRecord(0, 3, Buffer.alloc(20, 1), [ALG.sha256]),
    agileRecord(0xffffffff, 8, data, [ALG.sha256]),
    agileRecord(24, 8, data, [ALG.sha256]),
    agileRecord(0, 8, data, [ALG.sha256]),
  ]);
  const r = replayEventLog(parseEventLog(log));
  const want = h(ALG.sha256, Buffer.concat([Buffer.alloc(32), h(ALG.sha256, data)]));
  assert.deepEqual(r.pcrs.sha256, { 0: want });
});

test("PCRs 17-22 start at all 0xFF", () => {
  const data = Buffer.from("drtm");
  const log = Buffer.concat([specId03([{ alg: ALG.sha256 }]), agileRecord(17, 0x402, data, [ALG.sha256])]);
  const r = replayEventLog(parseEventLog(log));
  assert.deepEqual(r.pcrs.sha256[17], h(ALG.sha256, Buffer.concat([Buffer.alloc(32, 0xff), h(ALG.sha256, data)])));
});

test("banks this Node cannot hash are reported, not guessed", () => {
  const log = Buffer.concat([specId03([{ alg: ALG.sha256 }, { alg: 0x00aa, size: 40 }]), agileRecord(0, 8, Buffer.from("x"), [ALG.sha256, [0x00aa, Buffer.alloc(40)]])]);
  const r = replayEventLog(parseEventLog(log));
  assert.deepEqual(r.unsupportedBanks, ["0x00aa"]);
  const v = verifyEventLog(log, { "0x00aa": { 0: Buffer.alloc(40) } });
  assert.deepEqual(v.unexplained.map((u) => u.reason), ["bank-unsupported"]);
  assert.deepEqual(v.events, []);
});

test("quoted PCR indices outside 0..23 are a usage error", () => {
  const e = rejection(() => verifyEventLog(fixture(RHEL), { sha256: { 24: Buffer.alloc(32) } }));
  assert.equal(e.code, "ERR_VALIDATION");
});
