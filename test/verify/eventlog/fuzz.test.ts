import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isTpmTrustError } from "../../../src/errors.js";
import { interpretEvents, parseEventLog, replayEventLog, verifyEventLog } from "../../../src/verify/eventlog/index.js";
import { fixture, LOGS } from "./build.js";

const REAL = LOGS.map((n) => fixture(n));
const HEADERS = REAL.map((b) => parseEventLog(b).events.map((e) => e.offset));

/** Any input: parse, replay, self-verify, interpret and serialise; only typed errors may escape. */
function exercise(bytes: Buffer): void {
  let stage = "parse";
  try {
    const log = parseEventLog(bytes);
    stage = "replay";
    const replay = replayEventLog(log);
    stage = "verify";
    const verified = verifyEventLog(log, replay.pcrs);
    assert.deepEqual(verified.unexplained.filter((u) => u.reason !== "bank-unsupported" && u.reason !== "incomplete-digests"), []);
    stage = "interpret";
    JSON.stringify(interpretEvents(verified.events));
    JSON.stringify(interpretEvents(log.events));
    JSON.stringify(log.events.map((e) => e.decoded));
  } catch (e) {
    if (!isTpmTrustError(e)) throw new Error(`${stage}: untyped ${(e as Error).stack}`);
    // replay rejects an out-of-order StartupLocality with the parse code; nothing else may fail a self-verify
    assert.equal(e.code, "ERR_PARSE_EVENTLOG", `${stage}: ${e.code} ${e.message}`);
    assert.equal(typeof e.details?.offset, "number");
  }
}

type Mutation = { kind: "flip" | "set" | "delete" | "insert" | "truncate" | "dup"; pos: number; byte: number; len: number };
const mutation = fc.record({
  kind: fc.constantFrom<Mutation["kind"]>("flip", "set", "delete", "insert", "truncate", "dup"),
  pos: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  len: fc.integer({ min: 1, max: 64 }),
});

function mutate(b: Buffer, m: Mutation): Buffer {
  if (b.length === 0) return b;
  const p = m.pos % b.length;
  switch (m.kind) {
    case "flip": {
      const c = Buffer.from(b);
      c[p] ^= 1 << (m.byte & 7);
      return c;
    }
    case "set": {
      const c = Buffer.from(b);
      c[p] = m.byte;
      return c;
    }
    case "delete":
      return Buffer.concat([b.subarray(0, p), b.subarray(p + m.len)]);
    case "insert":
      return Buffer.concat([b.subarray(0, p), Buffer.alloc(m.len, m.byte), b.subarray(p)]);
    case "truncate":
      return b.subarray(0, p);
    case "dup":
      return Buffer.concat([b.subarray(0, p + m.len), b.subarray(p)]);
  }
}

test("mutated real logs never crash or hang the parser, replay, verifier or interpretation", { timeout: 120_000 }, () => {
  fc.assert(
    fc.property(fc.nat({ max: REAL.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
      exercise(ms.reduce(mutate, REAL[i]));
    }),
    { numRuns: 300 },
  );
});

test("hostile record headers (pcr, type, digest count, event size) in real logs", { timeout: 120_000 }, () => {
  const interesting = fc.constantFrom(0, 1, 3, 4, 7, 23, 24, 0x7f, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0x80000001, 0x80000003, 0x800000e0, 0xffffffff);
  fc.assert(
    fc.property(fc.nat({ max: REAL.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 15 }), interesting, (i, which, field, value) => {
      const offsets = HEADERS[i];
      const at = offsets[which % offsets.length] + field * 4;
      const b = Buffer.from(REAL[i]);
      if (at + 4 <= b.length) b.writeUInt32LE(value >>> 0, at);
      exercise(b);
    }),
    { numRuns: 300 },
  );
});

test("random bytes, alone and behind a real Spec ID event", { timeout: 60_000 }, () => {
  const specId = REAL[LOGS.indexOf("rhel8-gce-uefi.bin")].subarray(0, HEADERS[LOGS.indexOf("rhel8-gce-uefi.bin")][1]);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.boolean(), (r, prefixed) => {
      exercise(prefixed ? Buffer.concat([specId, r]) : Buffer.from(r));
    }),
    { numRuns: 300 },
  );
});

test("deeply nested SIPA containers are bounded", () => {
  let inner = Buffer.alloc(0);
  for (let d = 0; d < 50; d++) {
    const hdr = Buffer.alloc(8);
    hdr.writeUInt32LE(0x40010001, 0);
    hdr.writeUInt32LE(inner.length, 4);
    inner = Buffer.concat([hdr, inner]);
  }
  const rec = Buffer.alloc(32);
  rec.writeUInt32LE(12, 0);
  rec.writeUInt32LE(6, 4);
  rec.writeUInt32LE(inner.length, 28);
  const log = parseEventLog(Buffer.concat([rec, inner]));
  const d = log.events[0].decoded;
  assert.ok(d.kind === "undecodable" && /nested deeper/.test(d.error));
});
