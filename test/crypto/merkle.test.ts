/** RFC 9162 §2.1 Merkle trees: roots, inclusion and consistency proofs against the spec's recursive definitions. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { EMPTY_ROOT, Frontier, LeafHashes, leafHash, verifyConsistency, verifyInclusion } from "../../src/crypto/merkle.js";

const sha = (...b: Buffer[]) => createHash("sha256").update(Buffer.concat(b)).digest();

/** MTH(D[n]) exactly as §2.1.1 writes it, over the data (not the leaf hashes). */
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return sha();
  if (d.length === 1) return sha(Buffer.from([0]), d[0]);
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return sha(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)));
}

const leavesOf = (d: Buffer[]) => new LeafHashes(Buffer.concat(d.map(leafHash)));
const data = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`entry ${i}`));

test("the root of every size up to 70 is §2.1.1's MTH; the frontier extends it leaf by leaf and round-trips", () => {
  assert.deepEqual(EMPTY_ROOT, sha());
  const f = new Frontier();
  for (let n = 0; n <= 70; n++) {
    const d = data(n);
    const want = mth(d);
    assert.deepEqual(leavesOf(d).root(), want, `root of ${n}`);
    assert.deepEqual(f.root(), want, `frontier root of ${n}`);
    assert.deepEqual(Frontier.from(f.hashes, n).root(), want);
    f.push(leafHash(Buffer.from(`entry ${n}`)));
  }
  assert.throws(() => Frontier.from([EMPTY_ROOT], 3), RangeError);
});

test("every inclusion proof verifies and binds leaf, index and root (the signed head binds root to size)", () => {
  for (let n = 1; n <= 33; n++) {
    const l = leavesOf(data(n));
    const root = l.root();
    for (let m = 0; m < n; m++) {
      const p = l.inclusionProof(m, n);
      assert.ok(verifyInclusion(m, n, l.leaf(m), p, root), `leaf ${m} of ${n}`);
      assert.equal(verifyInclusion(m, n, leafHash(Buffer.from("other")), p, root), false);
      if (n > 1) assert.equal(verifyInclusion((m + 1) % n, n, l.leaf(m), p, root), false, "another index");
      assert.equal(verifyInclusion(m, n, l.leaf(m), p, leavesOf(data(n + 1)).root()), false, "another root");
      assert.equal(verifyInclusion(m, n, l.leaf(m), [...p, root], root), false, "a longer path");
    }
  }
});

test("every consistency proof verifies; one over a rewritten prefix does not", () => {
  for (let n = 1; n <= 33; n++) {
    const l = leavesOf(data(n));
    for (let m = 0; m <= n; m++) {
      const p = l.consistencyProof(m, n);
      assert.ok(verifyConsistency(m, n, l.root(0, m), l.root(), p), `${m} → ${n}`);
      if (m > 0 && m < n) {
        const forged = leavesOf([Buffer.from("rewritten"), ...data(n).slice(1)]);
        assert.equal(verifyConsistency(m, n, l.root(0, m), forged.root(), forged.consistencyProof(m, n)), false, `${m} → rewritten ${n}`);
        assert.equal(verifyConsistency(m, n, l.root(0, m), l.root(), p.slice(1)), false, "a shortened proof");
      }
    }
  }
});

test("random proofs with a flipped byte never verify", () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 200 }), fc.nat(), fc.nat(), fc.nat(), (n, a, b, flip) => {
      const l = leavesOf(data(n));
      const m = a % n;
      const p = l.inclusionProof(m, n);
      if (p.length > 0) {
        const q = p.map((x) => Buffer.from(x));
        q[flip % q.length][b % 32] ^= 1;
        assert.equal(verifyInclusion(m, n, l.leaf(m), q, l.root()), false);
      }
      const c = l.consistencyProof(m + 1 > n ? n : m + 1, n);
      if (c.length > 0) {
        const q = c.map((x) => Buffer.from(x));
        q[flip % q.length][b % 32] ^= 1;
        assert.equal(verifyConsistency(m + 1, n, l.root(0, m + 1), l.root(), q), false);
      }
    }),
  );
});
