/**
 * Merkle Tree Hash, inclusion and consistency proofs of RFC 9162 §2.1 (Certificate Transparency
 * 2.0), SHA-256, pure. Leaf hashes are kept in one Buffer, 32 bytes per leaf, in tree order.
 */
import { createHash } from "node:crypto";

export const HASH_LEN = 32;

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};
const LEAF = Buffer.from([0x00]);
const NODE = Buffer.from([0x01]);

/** §2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0)). */
export const leafHash = (data: Uint8Array): Buffer => sha256(LEAF, data);
/** §2.1.1: SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])). */
const nodeHash = (left: Uint8Array, right: Uint8Array): Buffer => sha256(NODE, left, right);
/** §2.1.1: the hash of an empty list is the hash of an empty string. */
export const EMPTY_ROOT = sha256();

/** The largest power of two smaller than n (n > 1): where §2.1.1 splits a list of n leaves. */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Leaf hashes in tree order. */
export class LeafHashes {
  constructor(readonly bytes: Buffer) {
    if (bytes.length % HASH_LEN !== 0) throw new RangeError("leaf hashes are 32 bytes each");
  }
  get size(): number {
    return this.bytes.length / HASH_LEN;
  }
  leaf(i: number): Buffer {
    return this.bytes.subarray(i * HASH_LEN, (i + 1) * HASH_LEN);
  }
  /** MTH(D[lo:hi]) (§2.1.1); the empty range hashes to EMPTY_ROOT. */
  root(lo = 0, hi = this.size): Buffer {
    if (hi - lo === 0) return EMPTY_ROOT;
    if (hi - lo === 1) return this.leaf(lo);
    // perfect subtrees left to right, folded from the right: the same splits as the recursion
    const f = new Frontier();
    for (let i = lo; i < hi; i++) f.push(this.leaf(i));
    return f.root();
  }
  /** PATH(m, D[0:n]) of §2.1.3.1: the inclusion proof of leaf m in the tree of the first n leaves. */
  inclusionProof(m: number, n: number): Buffer[] {
    if (!(m >= 0 && m < n && n <= this.size)) throw new RangeError(`no leaf ${m} in a tree of ${n}`);
    const path = (m: number, lo: number, hi: number): Buffer[] => {
      if (hi - lo === 1) return [];
      const k = split(hi - lo);
      return m < k ? [...path(m, lo, lo + k), this.root(lo + k, hi)] : [...path(m - k, lo + k, hi), this.root(lo, lo + k)];
    };
    return path(m, 0, n);
  }
  /** PROOF(m, D[0:n]) of §2.1.4.1: that the tree of the first m leaves is a prefix of the tree of n. */
  consistencyProof(m: number, n: number): Buffer[] {
    if (!(m >= 0 && m <= n && n <= this.size)) throw new RangeError(`no consistency between trees of ${m} and ${n}`);
    if (m === 0 || m === n) return [];
    const sub = (m: number, lo: number, hi: number, b: boolean): Buffer[] => {
      if (m === hi - lo) return b ? [] : [this.root(lo, hi)];
      const k = split(hi - lo);
      return m <= k ? [...sub(m, lo, lo + k, b), this.root(lo + k, hi)] : [...sub(m - k, lo + k, hi, false), this.root(lo, lo + k)];
    };
    return sub(m, 0, n, true);
  }
}

/**
 * The right edge of a tree being appended to: the roots of its perfect subtrees, largest first
 * (what a log must keep to extend its tree without the leaves).
 */
export class Frontier {
  private readonly nodes: { size: number; hash: Buffer }[] = [];

  static from(hashes: readonly Buffer[], size: number): Frontier {
    const f = new Frontier();
    let rest = size;
    for (const hash of hashes) {
      let s = 1;
      while (s * 2 <= rest) s *= 2;
      if (rest === 0) throw new RangeError("more frontier hashes than the tree size allows");
      f.nodes.push({ size: s, hash });
      rest -= s;
    }
    if (rest !== 0) throw new RangeError(`a frontier for ${size} leaves needs ${hashes.length + popcount(rest)} hashes`);
    return f;
  }
  get size(): number {
    return this.nodes.reduce((n, x) => n + x.size, 0);
  }
  get hashes(): Buffer[] {
    return this.nodes.map((x) => x.hash);
  }
  push(leaf: Buffer): void {
    let node = { size: 1, hash: leaf };
    while (this.nodes.length > 0 && this.nodes[this.nodes.length - 1].size === node.size) {
      const left = this.nodes.pop()!;
      node = { size: left.size * 2, hash: nodeHash(left.hash, node.hash) };
    }
    this.nodes.push(node);
  }
  root(): Buffer {
    if (this.nodes.length === 0) return EMPTY_ROOT;
    let acc = this.nodes[this.nodes.length - 1].hash;
    for (let i = this.nodes.length - 2; i >= 0; i--) acc = nodeHash(this.nodes[i].hash, acc);
    return acc;
  }
}

function popcount(n: number): number {
  let c = 0;
  for (; n > 0; n = Math.floor(n / 2)) c += n % 2;
  return c;
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

/** §2.1.3.2: does `proof` show leaf `index` (hash `leaf`) in the tree of `size` leaves with root `root`? */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** §2.1.4.2: does `proof` show the tree of `size1` leaves (root `root1`) a prefix of the tree of `size2` (root `root2`)? */
export function verifyConsistency(size1: number, size2: number, root1: Uint8Array, root2: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!(Number.isSafeInteger(size1) && Number.isSafeInteger(size2) && size1 >= 0 && size1 <= size2)) return false;
  if (size1 === size2) return proof.length === 0 && equal(root1, root2);
  if (size1 === 0) return proof.length === 0 && equal(root1, EMPTY_ROOT);
  if (proof.length === 0) return false;
  // step 2: if size1 is an exact power of 2, first_hash is the proof's first value
  const path: Uint8Array[] = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  // step 4: while LSB(fn) is set, right-shift both
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Uint8Array = path[0];
  let sr: Uint8Array = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, root1) && equal(sr, root2);
}

function isPowerOfTwo(n: number): boolean {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}
