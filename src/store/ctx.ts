import { createHash } from "node:crypto";
import { sql, type Kysely, type SelectQueryBuilder } from "kysely";
import { TpmTrustError } from "../errors.js";
import type { Database } from "./schema.js";

export type DialectName = "sqlite" | "postgres";

/** What every repo is built over: a connection (or one transaction's connection) and its dialect. */
export interface Ctx {
  readonly db: Kysely<Database>;
  readonly dialect: DialectName;
  /**
   * Runs `fn` in one transaction (already inside one: just runs it). SQLite: BEGIN IMMEDIATE, so
   * the write lock is taken up front and writers from other processes wait (busy_timeout) instead
   * of failing on lock upgrade. PostgreSQL: BEGIN (READ COMMITTED); serialise with `lock`.
   */
  transaction<T>(fn: (tx: Ctx) => Promise<T>): Promise<T>;
  /**
   * Inside a transaction: waits until no other transaction holds the lock `name`, and keeps it to
   * the end of this one (PostgreSQL advisory transaction lock; SQLite's write lock already
   * serialises all writers).
   */
  lock(name: string): Promise<void>;
  /** Runs read-only `fn` on one consistent snapshot without blocking writers (SQLite WAL read transaction; PostgreSQL REPEATABLE READ). */
  snapshot<T>(fn: (tx: Ctx) => Promise<T>): Promise<T>;
  /**
   * Like `transaction`, for short, frequent writes (attestation verdicts). SQLite: the transactions
   * requested in one turn of the event loop share one BEGIN/COMMIT, each inside its own SAVEPOINT,
   * so one that throws is rolled back alone and the others commit (group commit; a failed COMMIT
   * fails them all). PostgreSQL: just `transaction` (concurrent connections serve it better).
   */
  grouped<T>(fn: (tx: Ctx) => Promise<T>): Promise<T>;
}

export function rootCtx(db: Kysely<Database>, dialect: DialectName): Ctx {
  const run = <T>(begin: string, fn: (tx: Ctx) => Promise<T>): Promise<T> =>
    db.connection().execute(async (conn) => {
      await sql.raw(begin).execute(conn);
      try {
        const result = await fn(txCtx(conn, dialect));
        await sql.raw("commit").execute(conn);
        return result;
      } catch (e) {
        await sql.raw("rollback").execute(conn).catch(() => undefined);
        throw e;
      }
    });
  const transaction = <T>(fn: (tx: Ctx) => Promise<T>): Promise<T> => run(dialect === "sqlite" ? "begin immediate" : "begin", fn);

  type Member = { fn: (tx: Ctx) => Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void };
  let group: Member[] | undefined;
  const flush = async (members: Member[]): Promise<void> => {
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      await transaction(async (tx) => {
        for (const m of members) {
          await sql.raw("savepoint grouped").execute(tx.db);
          try {
            outcomes.push({ ok: true, value: await m.fn(tx) });
          } catch (error) {
            await sql.raw("rollback to grouped").execute(tx.db);
            outcomes.push({ ok: false, error });
          }
          await sql.raw("release grouped").execute(tx.db);
        }
      });
    } catch (e) {
      for (const m of members) m.reject(e);
      return;
    }
    members.forEach((m, i) => {
      const o = outcomes[i];
      if (o.ok) m.resolve(o.value);
      else m.reject(o.error);
    });
  };
  const grouped = <T>(fn: (tx: Ctx) => Promise<T>): Promise<T> => {
    if (dialect !== "sqlite") return transaction(fn);
    return new Promise<T>((resolve, reject) => {
      if (!group) {
        const members: Member[] = (group = []);
        setImmediate(() => {
          group = undefined;
          void flush(members);
        });
      }
      group.push({ fn, resolve: resolve as (v: unknown) => void, reject });
    });
  };

  return {
    db,
    dialect,
    transaction,
    grouped,
    snapshot: (fn) => run(dialect === "sqlite" ? "begin" : "begin isolation level repeatable read read only", fn),
    lock: () => Promise.reject(new TpmTrustError("ERR_INTERNAL", "store lock taken outside a transaction")),
  };
}

function txCtx(conn: Kysely<Database>, dialect: DialectName): Ctx {
  const self: Ctx = {
    db: conn,
    dialect,
    transaction: (fn) => fn(self),
    grouped: (fn) => fn(self),
    snapshot: (fn) => fn(self),
    lock: async (name) => {
      if (dialect === "postgres") await sql`select pg_advisory_xact_lock(${advisoryKey(name)}::bigint)`.execute(conn);
    },
  };
  return self;
}

/** A stable signed 64-bit advisory lock key for a lock name. */
function advisoryKey(name: string): string {
  const h = createHash("sha256").update(`tpmtrust:${name}`).digest();
  return h.readBigInt64BE(0).toString();
}

/** `SELECT … FOR UPDATE` on PostgreSQL; SQLite has no row locks (its transactions lock the file). */
export function forUpdate<DB, TB extends keyof DB, O>(ctx: Ctx, qb: SelectQueryBuilder<DB, TB, O>): SelectQueryBuilder<DB, TB, O> {
  return ctx.dialect === "postgres" ? qb.forUpdate() : qb;
}

// --- value codecs (see schema.ts for the conventions) ---
export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const unhex = (s: string): Buffer => Buffer.from(s, "hex");
export const hexOrNull = (b: Uint8Array | null | undefined): string | null => (b ? hex(b) : null);
export const unhexOrNull = (s: string | null): Buffer | null => (s === null ? null : unhex(s));
export const toJson = (v: unknown): string => JSON.stringify(v);
export const fromJson = <T>(s: string): T => JSON.parse(s) as T;
export const fromJsonOrNull = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

/** Unique-constraint violation on either driver. */
function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE";
}

/** Foreign-key violation on either driver (the referenced row does not exist). */
function isForeignKeyViolation(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === "23503" || code === "SQLITE_CONSTRAINT_FOREIGNKEY";
}

/** Runs an insert; a duplicate key becomes ERR_CONFLICT and a missing referenced row ERR_NOT_FOUND. */
export async function insertOrConflict<T>(p: Promise<T>, conflict: string, missing = "a referenced object does not exist"): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (isUniqueViolation(e)) throw new TpmTrustError("ERR_CONFLICT", conflict);
    if (isForeignKeyViolation(e)) throw new TpmTrustError("ERR_NOT_FOUND", missing);
    throw e;
  }
}

export function notFound(what: string): TpmTrustError {
  return new TpmTrustError("ERR_NOT_FOUND", `${what} not found`);
}

/** Updates/deletes report affected rows as bigint on both drivers. */
export function affected(r: { numUpdatedRows?: bigint; numDeletedRows?: bigint }): number {
  return Number(r.numUpdatedRows ?? r.numDeletedRows ?? 0n);
}
