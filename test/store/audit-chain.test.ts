import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ChainWalker, GENESIS_HASH, auditHash, canonicalJson, toJsonValue, type AuditFields, type AuditOutcome, type JsonValue } from "../../src/store/audit-chain.js";
import type { ChainRow } from "../../src/store/audit-chain.js";

test("canonical JSON sorts keys at every depth and has no whitespace", () => {
  assert.equal(canonicalJson({ b: [{ z: 1, a: null }], a: "x\n", c: { y: true, x: -1.5 } }), '{"a":"x\\n","b":[{"a":null,"z":1}],"c":{"x":-1.5,"y":true}}');
  assert.throws(() => canonicalJson(Number.NaN));
});

test("canonical JSON is a fixed point of parse ∘ canonicalJson", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const c = canonicalJson(v as JsonValue);
      assert.equal(canonicalJson(JSON.parse(c) as JsonValue), c);
    }),
  );
});

test("toJsonValue: bytes as hex, bigints as strings, undefined members dropped, __proto__ kept as data", () => {
  const v = toJsonValue(JSON.parse('{"__proto__":{"x":1}}'));
  assert.equal(canonicalJson(v), '{"__proto__":{"x":1}}');
  assert.deepEqual(toJsonValue({ b: Buffer.from([1, 255]), n: 10n, u: undefined, d: new Date(0), a: [undefined, Number.POSITIVE_INFINITY] }), {
    b: "01ff",
    n: "10",
    d: "1970-01-01T00:00:00.000Z",
    a: [null, "Infinity"],
  });
});

const outcomes: AuditOutcome[] = ["success", "failure", "denied"];
type Entry = Omit<AuditFields, "seq">;
const entryArb: fc.Arbitrary<Entry> = fc.record({
  at: fc.integer({ min: 0, max: 2 ** 45 }),
  actor: fc.string(),
  action: fc.string(),
  subject: fc.option(fc.string(), { nil: null }),
  outcome: fc.constantFrom(...outcomes),
  details: fc.jsonValue() as fc.Arbitrary<JsonValue>,
});

type Row = ChainRow & { prev_hash: string; hash: string };

function chain(entries: Entry[]): Row[] {
  let prev = GENESIS_HASH;
  return entries.map((e, i) => {
    const details = JSON.parse(canonicalJson(e.details)) as JsonValue;
    const hash = auditHash(prev, { ...e, seq: i + 1, details });
    const row = { ...e, seq: i + 1, details: canonicalJson(details), prev_hash: prev, hash };
    prev = hash;
    return row;
  });
}

function walk(rows: Row[], head: { seq: number; hash: string }, anchors: { seq: number; hash: string }[] = []) {
  const w = new ChainWalker(anchors);
  for (const r of rows) {
    const bad = w.next(r);
    if (bad) return bad;
  }
  return w.finish(head);
}

test("an intact chain verifies", () => {
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 8 }), (entries) => {
      const rows = chain(entries);
      assert.equal(walk(rows, { seq: rows.length, hash: rows.at(-1)?.hash ?? GENESIS_HASH }), undefined);
    }),
  );
});

test("any changed field of any entry is found at that entry's seq", () => {
  const fields = ["at", "actor", "action", "subject", "outcome", "details", "prev_hash", "hash"] as const;
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 6 }), fc.nat(), fc.constantFrom(...fields), (entries, pick, field) => {
      const rows = chain(entries);
      const head = { seq: rows.length, hash: rows.at(-1)!.hash };
      const k = pick % rows.length;
      const r = { ...rows[k] };
      if (field === "at") r.at += 1;
      else if (field === "subject") r.subject = r.subject === null ? "" : null;
      else if (field === "outcome") r.outcome = r.outcome === "success" ? "denied" : "success";
      else if (field === "details") r.details = canonicalJson({ tampered: JSON.parse(r.details) as JsonValue });
      else if (field === "prev_hash" || field === "hash") r[field] = (r[field][0] === "0" ? "1" : "0") + r[field].slice(1);
      else r[field] = r[field] + "x";
      rows[k] = r;
      const bad = walk(rows, head);
      assert.ok(bad, `${field} of seq ${k + 1} changed unnoticed`);
      assert.equal(bad.seq, k + 1);
    }),
  );
});

test("a deleted entry is found at its seq", () => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 6 }), fc.nat(), (entries, pick) => {
      const rows = chain(entries);
      const head = { seq: rows.length, hash: rows.at(-1)!.hash };
      const k = pick % rows.length;
      rows.splice(k, 1);
      assert.equal(walk(rows, head)?.seq, k + 1);
    }),
  );
});

test("anchors: a chain recomputed from an edited entry on, or cut back below an anchor, verifies on its own but not against the anchor", () => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 2, maxLength: 6 }), fc.nat(), fc.boolean(), (entries, pick, cut) => {
      const rows = chain(entries);
      const anchor = { seq: rows.length, hash: rows.at(-1)!.hash.toUpperCase() };
      assert.equal(walk(rows, { seq: rows.length, hash: rows.at(-1)!.hash }, [anchor]), undefined, "anchors compare case-insensitively");
      const k = pick % rows.length;
      // whoever can write the database rewrites entry k and recomputes the rest, or deletes from k on, and fixes the head
      const forged = cut ? chain(entries.slice(0, Math.max(k, 1))) : chain(entries.map((e, i) => (i === k ? { ...e, actor: e.actor + "x" } : e)));
      const head = { seq: forged.length, hash: forged.at(-1)!.hash };
      assert.equal(walk(forged, head), undefined, "without an anchor the forgery is a valid chain");
      const bad = walk(forged, head, [anchor]);
      assert.equal(bad?.problem, "anchor");
      assert.equal(bad?.seq, cut ? forged.length + 1 : rows.length);
    }),
  );
});
