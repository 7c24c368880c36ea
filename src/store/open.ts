import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { Worker } from "node:worker_threads";
import SqliteDatabase from "better-sqlite3";
import { type DatabaseConnection, type Driver, Kysely, type LogEvent, PostgresDialect, SqliteDialect, type SqliteDialectConfig } from "kysely";
import pg from "pg";
import { TpmTrustError } from "../errors.js";
import { type Ctx, type DialectName, rootCtx } from "./ctx.js";
import { StoreFaults } from "./faults.js";
import { migrate } from "./migrations/index.js";
import { serverStatements } from "./prepared.js";
import { type Repos, makeRepos } from "./repos/index.js";
import type { Database } from "./schema.js";

export interface Store extends Repos {
  readonly dialect: DialectName;
  /** the SQLite file, or the PostgreSQL URL without its password: for messages */
  readonly location: string;
  /** schema version after migrating */
  readonly schemaVersion: number;
  /**
   * Runs `fn` in one transaction; everything it does through `tx` commits or rolls back together.
   * Inside `fn` use only `tx`: the outer store waits for the connection the transaction holds
   * (SQLite has one), so calling it from `fn` would never return.
   */
  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
  /** `transaction` with group commit on SQLite (see Ctx.grouped): for short, frequent writes. */
  groupedTransaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
  /** failed audit appends and PostgreSQL pool errors, for the service to log and count */
  readonly faults: StoreFaults;
  /** queries sent since the store opened, for the service to count */
  readonly stats: StoreStats;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** SQLite: fail with ERR_IO instead of creating a missing database file (read-only commands). */
  mustExist?: boolean;
  /** PostgreSQL: connections in the pool (default 10). */
  poolSize?: number;
  /**
   * SQLite file: checkpoint the WAL from a background thread every `ms` (long-running services), so
   * that checkpoint fsyncs stay off the thread that serves requests.
   */
  backgroundCheckpointMs?: number;
  /**
   * How long a query waits for a connection (SQLite's one, or a free one of the PostgreSQL pool)
   * before failing with ERR_STORE_BUSY; default 60 s. Waits that long only when the store is wedged,
   * e.g. by a transaction waiting for a query made outside it: an error then, not a hang.
   */
  connectionWaitMs?: number;
  /** PostgreSQL: the server ends a session idle inside a transaction this long, releasing its locks (default 60 s). */
  idleInTransactionMs?: number;
}

/**
 * Queries the store sent (succeeded or failed). On PostgreSQL each is one round trip to the server
 * (node-postgres sends one query at a time per connection); `statements` leaves out transaction
 * control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE).
 */
export interface StoreStats {
  roundTrips: number;
  statements: number;
}

const TX_CONTROL = /^\s*(begin|commit|rollback|savepoint|release)\b/i;

function counting(stats: StoreStats): (e: LogEvent) => void {
  return (e) => {
    stats.roundTrips++;
    if (!TX_CONTROL.test(e.query.sql)) stats.statements++;
  };
}

const DEFAULT_CONNECTION_WAIT_MS = 60_000;
const DEFAULT_IDLE_IN_TRANSACTION_MS = 60_000;

function storeBusy(ms: number, dialect: DialectName): TpmTrustError {
  const why = dialect === "postgres" ? "every pooled connection stayed busy, or the server did not answer" : "the connection stayed busy";
  return new TpmTrustError("ERR_STORE_BUSY", `no database connection within ${ms / 1000} s: ${why}`, { waitedMs: ms });
}

/** The embedded default: a SQLite file under the working directory, or $TPMTRUST_DB. */
export const DEFAULT_DB = ".tpmtrust/tpmtrust.db";

/** The database a command uses: its --db flag, else $TPMTRUST_DB, else DEFAULT_DB. */
export function resolveDbUrl(flag?: string): string {
  return flag ?? process.env.TPMTRUST_DB ?? DEFAULT_DB;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/**
 * Opens the store and brings its schema up to date. `postgres://…` / `postgresql://…` selects
 * PostgreSQL; anything else is a SQLite file path (created on first start, mode 0600) or
 * `:memory:`. Only one Store per SQLite file per process: better-sqlite3 waits for locks
 * synchronously, so two in-process writers on one file would block each other.
 */
export async function openStore(url: string, opts: OpenOptions = {}): Promise<Store> {
  const faults = new StoreFaults();
  const stats: StoreStats = { roundTrips: 0, statements: 0 };
  const { db, dialect, location } = isPostgresUrl(url) ? openPostgres(url, opts, faults, counting(stats)) : openSqlite(url, opts, counting(stats));
  const ctx = rootCtx(db, dialect);
  let version: number;
  try {
    version = (await migrate(ctx)).version;
  } catch (e) {
    await db.destroy().catch(() => undefined);
    throw connectError(e, dialect, location);
  }
  return storeOver(ctx, location, version, faults, stats);
}

/**
 * The repos over `ctx`, with the audit append at its call boundary: a failed append is reported
 * and becomes ERR_AUDIT_WRITE_FAILED, never swallowed, so the decision it was to record fails
 * with it (and rolls back, inside the decision's transaction).
 */
function reposOver(ctx: Ctx, faults: StoreFaults): Repos {
  const repos = makeRepos(ctx);
  const append = repos.audit.append;
  repos.audit = {
    ...repos.audit,
    append: async (e) => {
      try {
        return await append(e);
      } catch (error) {
        faults.report({ kind: "audit-append", action: e.action, error });
        throw new TpmTrustError("ERR_AUDIT_WRITE_FAILED", `the audit entry ${e.action} could not be written: ${error instanceof Error ? error.message : String(error)}`, { action: e.action });
      }
    },
  };
  return repos;
}

// The members of one group commit share their transaction's repos.
const txRepos = new WeakMap<Ctx, Repos>();

function storeOver(ctx: Ctx, location: string, schemaVersion: number, faults: StoreFaults, stats: StoreStats): Store {
  const reposOf = (tx: Ctx): Repos => {
    let r = txRepos.get(tx);
    if (!r) txRepos.set(tx, (r = reposOver(tx, faults)));
    return r;
  };
  return {
    ...reposOver(ctx, faults),
    dialect: ctx.dialect,
    location,
    schemaVersion,
    faults,
    stats,
    transaction: (fn) => ctx.transaction((tx) => fn(reposOver(tx, faults))),
    groupedTransaction: (fn) => ctx.grouped((tx) => fn(reposOf(tx))),
    close: () => ctx.db.destroy(),
  };
}

function openSqlite(path: string, opts: OpenOptions, log: (e: LogEvent) => void): { db: Kysely<Database>; dialect: DialectName; location: string } {
  const location = path === ":memory:" ? path : resolve(path);
  if (location !== ":memory:" && !existsSync(location)) {
    if (opts.mustExist) throw new TpmTrustError("ERR_IO", `no database at ${location}`);
    mkdirSync(dirname(location), { recursive: true, mode: 0o700 });
    // The database holds signing keys and secrets: create it private. SQLite gives its -wal/-shm files the same mode.
    closeSync(openSync(location, "a", 0o600));
  }
  let sqlite: SqliteDatabase.Database;
  try {
    sqlite = new SqliteDatabase(location);
    // another process's write (e.g. its migrations on a fresh database) is waited for as long as a
    // connection is (60 s, then ERR_STORE_BUSY elsewhere): a loaded machine made 5 s too short
    sqlite.pragma("busy_timeout = 60000");
    // WAL: readers never block the writer. synchronous=NORMAL in WAL mode loses nothing on a
    // process crash (kill -9); only an OS crash/power loss can drop the last commits.
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    // A checkpoint (copying the WAL back, with fsyncs) every 10,000 pages (~40 MB) instead of 1,000:
    // under sustained writes (attestations) checkpoint fsyncs were most of a commit's average cost.
    sqlite.pragma("wal_autocheckpoint = 10000");
    sqlite.pragma("foreign_keys = ON");
    // 64 MiB of pages kept in memory (the default is 2 MiB): a fleet's hosts, nonces and newest
    // attestations are read and written at random, and a miss is a read from the OS
    sqlite.pragma("cache_size = -65536");
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot open SQLite database ${location}: ${(e as Error).message}`);
  }
  const checkpointer = location !== ":memory:" && opts.backgroundCheckpointMs ? startCheckpointer(location, opts.backgroundCheckpointMs) : undefined;
  const dialect = new BoundedSqliteDialect({ database: withStatementCache(sqlite, () => void checkpointer?.terminate()) }, opts.connectionWaitMs ?? DEFAULT_CONNECTION_WAIT_MS);
  return { db: new Kysely<Database>({ dialect, log }), dialect: "sqlite", location };
}

/** Kysely's SQLite dialect, whose wait for its single connection (unbounded there) ends after `waitMs`. */
class BoundedSqliteDialect extends SqliteDialect {
  constructor(
    config: SqliteDialectConfig,
    private readonly waitMs: number,
  ) {
    super(config);
  }

  override createDriver(): Driver {
    const driver = super.createDriver();
    const acquire = driver.acquireConnection.bind(driver);
    driver.acquireConnection = () =>
      new Promise<DatabaseConnection>((resolve, reject) => {
        let late = false;
        const timer = setTimeout(() => {
          late = true;
          reject(storeBusy(this.waitMs, "sqlite"));
        }, this.waitMs);
        acquire().then(
          (conn) => {
            clearTimeout(timer);
            // the caller gave up: hand the connection straight back
            if (late) void driver.releaseConnection(conn);
            else resolve(conn);
          },
          (e: unknown) => {
            clearTimeout(timer);
            reject(e);
          },
        );
      });
    return driver;
  }
}

/**
 * A worker thread with its own connection that runs PASSIVE checkpoints (they never block
 * writers); the serving connection's own checkpoints (wal_autocheckpoint) then rarely trigger.
 */
function startCheckpointer(location: string, ms: number): Worker {
  const code = `
    const { workerData } = require("node:worker_threads");
    const db = new (require(workerData.driver))(workerData.location, { fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    setInterval(() => { try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {} }, workerData.ms);`;
  const w = new Worker(code, { eval: true, workerData: { location, ms, driver: createRequire(import.meta.url).resolve("better-sqlite3") } });
  w.on("error", () => undefined); // losing it only brings the serving connection's own checkpoints back
  w.unref();
  return w;
}

/**
 * Kysely prepares every query anew; a statement is compiled once per distinct SQL text instead
 * (the repos issue a few dozen shapes). Safe because the store never streams (`.stream()` keeps a
 * statement busy while iterating); every other use runs it to completion synchronously.
 */
function withStatementCache(sqlite: SqliteDatabase.Database, onClose: () => void): SqliteDialectConfig["database"] {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => {
      onClose();
      sqlite.close();
    },
    prepare(sqlText: string) {
      let stmt = statements.get(sqlText);
      if (!stmt) {
        stmt = sqlite.prepare(sqlText);
        if (statements.size >= 1000) statements.clear();
        statements.set(sqlText, stmt);
      }
      return stmt;
    },
  };
}

// BIGINT (int8) columns hold epoch-ms times and counters, all far below 2^53: return numbers, not strings.
const INT8_OID = 20;
const pgTypes = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

function openPostgres(url: string, opts: OpenOptions, faults: StoreFaults, log: (e: LogEvent) => void): { db: Kysely<Database>; dialect: DialectName; location: string } {
  let location: string;
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    location = u.toString();
  } catch {
    throw new TpmTrustError("ERR_USAGE", "the PostgreSQL URL does not parse");
  }
  const waitMs = opts.connectionWaitMs ?? DEFAULT_CONNECTION_WAIT_MS;
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    types: pgTypes,
    application_name: "tpmtrust",
    connectionTimeoutMillis: waitMs,
    idle_in_transaction_session_timeout: opts.idleInTransactionMs ?? DEFAULT_IDLE_IN_TRANSACTION_MS,
  });
  // A client losing its connection (server restart, a session ended for idling in a transaction)
  // must not crash the process: idle, the pool drops it; checked out, its query fails and the pool
  // drops it on release. The next query connects anew. Either way the error is reported.
  const report = (error: Error) => faults.report({ kind: "pool", error });
  pool.on("error", report);
  pool.on("connect", (client) => client.on("error", report));
  const bounded = {
    // pg's own timeout error, for a pool that stayed full or a server that did not answer
    connect: () =>
      pool.connect().then(
        namingPrepared,
        (e: Error) => Promise.reject(/timeout exceeded when trying to connect/i.test(e.message) ? storeBusy(waitMs, "postgres") : e),
      ),
    end: () => pool.end(),
  };
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool: bounded }), log }), dialect: "postgres", location };
}

const named = new WeakSet<pg.PoolClient>();

/**
 * Sends the store's prepared queries (prepared.ts) as named statements: node-postgres parses and
 * plans each once per connection on the server, then only binds and executes it.
 */
function namingPrepared(client: pg.PoolClient): pg.PoolClient {
  if (named.has(client)) return client;
  named.add(client);
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const name = typeof args[0] === "string" && args.length === 2 ? serverStatements.get(args[0]) : undefined;
    return name ? query({ name, text: args[0], values: args[1] }) : query(...args);
  }) as typeof client.query;
  return client;
}

function connectError(e: unknown, dialect: DialectName, location: string): unknown {
  if (e instanceof TpmTrustError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new TpmTrustError("ERR_IO", `cannot use the ${dialect === "postgres" ? "PostgreSQL" : "SQLite"} database ${location}: ${msg}`);
}
