import { createHash } from "node:crypto";
import { leafHash } from "../crypto/merkle.js";

/**
 * The audit log's hashing, pure (no database). Since schema version 12 every entry is a leaf of a
 * Merkle tree (RFC 9162 §2.1; docs/audit.md): leaf data = UTF-8 canonical JSON of
 * {seq, at, actor, action, subject, outcome, details}. Entries stored before it also form a hash
 * chain: entry n stores prev_hash = hash of entry n-1 (GENESIS_HASH for seq 1) and hash =
 * SHA-256(prev_hash bytes ‖ the same JSON); audit_head keeps that chain's last seq and hash.
 */
export const GENESIS_HASH = "0".repeat(64);

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export type AuditOutcome = "success" | "failure" | "denied";

export interface AuditFields {
  seq: number;
  /** epoch ms */
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  outcome: AuditOutcome;
  details: JsonValue;
}

export interface AuditEntry extends AuditFields {
  /** the hash chain, for entries written before schema version 12 only */
  prevHash: string | null;
  hash: string | null;
  /** the entry's leaf in the Merkle tree, once a checkpoint integrated it */
  leafIndex: number | null;
  leafHash: string | null;
}

/** JSON with object keys sorted (UTF-16 code unit order) and no whitespace; one text per value. */
export function canonicalJson(v: JsonValue): string {
  if (v === null || typeof v === "boolean" || typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TypeError("canonical JSON has no non-finite numbers");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(",")}}`;
}

/**
 * Turns arbitrary details into a JSON value the chain can hash: Buffers/Uint8Arrays become hex,
 * bigints decimal strings, Dates ISO-8601, undefined object members are dropped.
 */
export function toJsonValue(v: unknown): JsonValue {
  if (v === null || v === undefined) return null;
  if (typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v);
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (typeof v === "object") {
    // fromEntries defines own properties, so a "__proto__" key stays data
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, toJsonValue(x)]));
  }
  return String(v);
}

/** An entry as stored: details as canonical JSON text. */
export interface StoredFields {
  seq: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  outcome: string;
  details: string;
}

/** A row of the hash chain kept before schema version 12. */
export interface ChainRow extends StoredFields {
  prev_hash: string | null;
  hash: string | null;
}

/** The leaf data of an entry as stored (details already canonical JSON text). */
export function leafData(e: StoredFields): Buffer {
  // canonicalJson's key order (action, actor, at, details, outcome, seq, subject), details spliced as stored
  const s = (v: string | null) => JSON.stringify(v);
  return Buffer.from(`{"action":${s(e.action)},"actor":${s(e.actor)},"at":${JSON.stringify(e.at)},"details":${e.details},"outcome":${s(e.outcome)},"seq":${e.seq},"subject":${s(e.subject)}}`, "utf8");
}

/** hex RFC 9162 leaf hash of an entry as stored. */
export const entryLeafHash = (e: StoredFields): string => leafHash(leafData(e)).toString("hex");

export function auditHash(prevHash: string, e: AuditFields): string {
  const body = canonicalJson({ seq: e.seq, at: e.at, actor: e.actor, action: e.action, subject: e.subject, outcome: e.outcome, details: e.details });
  return createHash("sha256").update(Buffer.from(prevHash, "hex")).update(body, "utf8").digest("hex");
}

/**
 * What is wrong at the first bad seq: a gap (deleted/inserted entry), a broken link, an entry whose
 * content changed, a head that does not match the last entry, or an anchor (a seq and hash kept
 * outside the database) that the chain no longer has: the log was rewritten or cut back.
 */
export type ChainProblem = "gap" | "link" | "hash" | "details" | "head" | "anchor" | "checkpoint" | "signature" | "consistency";

/**
 * Kept outside the database: a tree head seen earlier (SEQ = tree size, HASH = its root, as
 * `audit verify` and the service's "audit head" log lines print it), or for entries written before
 * schema version 12 a head of their hash chain (SEQ = seq, HASH = that entry's chain hash).
 */
export interface AuditAnchor {
  seq: number;
  hash: string;
}

export interface ChainBreak {
  seq: number;
  problem: ChainProblem;
  reason: string;
}

/**
 * Walks stored rows (details still the stored text) in seq order; `next` returns the first break
 * found, then the caller stops. A chain without a key can be recomputed by whoever can write the
 * database: anchors kept elsewhere are what expose a rewritten or truncated log.
 */
export class ChainWalker {
  private expectSeq = 1;
  private prevHash = GENESIS_HASH;
  private readonly anchors: Map<number, string>;

  constructor(anchors: readonly AuditAnchor[] = []) {
    this.anchors = new Map(anchors.map((a) => [a.seq, a.hash.toLowerCase()]));
  }

  get length(): number {
    return this.expectSeq - 1;
  }

  next(row: ChainRow): ChainBreak | undefined {
    if (row.seq !== this.expectSeq) {
      return { seq: this.expectSeq, problem: "gap", reason: `expected seq ${this.expectSeq}, found ${row.seq}: entries were deleted or inserted` };
    }
    if (row.prev_hash !== this.prevHash) {
      return { seq: row.seq, problem: "link", reason: `prev_hash does not equal the hash of seq ${row.seq - 1}` };
    }
    let details: JsonValue;
    try {
      details = JSON.parse(row.details) as JsonValue;
    } catch {
      return { seq: row.seq, problem: "details", reason: "details are not valid JSON" };
    }
    if (canonicalJson(details) !== row.details) return { seq: row.seq, problem: "details", reason: "details are not in canonical form: the row was edited" };
    const fields: AuditFields = { seq: row.seq, at: row.at, actor: row.actor, action: row.action, subject: row.subject, outcome: row.outcome as AuditOutcome, details };
    if (auditHash(this.prevHash, fields) !== row.hash) return { seq: row.seq, problem: "hash", reason: "the entry does not hash to its stored hash: the row was edited" };
    const anchored = this.anchors.get(row.seq);
    if (anchored !== undefined && anchored !== row.hash) return { seq: row.seq, problem: "anchor", reason: `entry ${row.seq} no longer has the anchored hash ${anchored}: the log was rewritten` };
    this.prevHash = row.hash!;
    this.expectSeq++;
    return undefined;
  }

  /** After the last row: the head must name exactly the last entry. */
  finish(head: { seq: number; hash: string }): ChainBreak | undefined {
    const beyond = [...this.anchors.keys()].filter((seq) => seq > this.length).sort((a, b) => a - b)[0];
    if (beyond !== undefined) return { seq: this.length + 1, problem: "anchor", reason: `the log ends at seq ${this.length} but seq ${beyond} was anchored: entries were cut off` };
    if (head.seq > this.length) return { seq: this.length + 1, problem: "head", reason: `the head records seq ${head.seq} but the log ends at ${this.length}: entries were deleted from the end` };
    if (head.seq < this.length) return { seq: head.seq + 1, problem: "head", reason: `entries after seq ${head.seq} were not appended through the log` };
    if (head.hash !== this.prevHash) return { seq: head.seq, problem: "head", reason: "the head hash does not match the last entry" };
    return undefined;
  }
}
