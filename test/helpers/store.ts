/**
 * Runs one store test suite against both dialects: `BACKENDS` yields SQLite (temp files) and a real
 * PostgreSQL (one throwaway cluster per test file, a fresh database per `newUrl()`). `rawSql`
 * goes around the store, for tests that tamper with rows.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import pg from "pg";
import { isPostgresUrl } from "../../src/store/index.js";
import { startPostgres } from "./postgres.js";

export interface Backend {
  name: "sqlite" | "postgres";
  /** URL of a fresh, empty database */
  newUrl(): Promise<string>;
  close(): Promise<void>;
}

async function sqliteBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-store-"));
  let n = 0;
  return {
    name: "sqlite",
    newUrl: async () => join(dir, `db${++n}.sqlite`),
    close: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function postgresBackend(): Promise<Backend> {
  const cluster = await startPostgres();
  return { name: "postgres", newUrl: () => cluster.createDatabase(), close: () => cluster.stop() };
}

export const BACKENDS: [Backend["name"], () => Promise<Backend>][] = [
  ["sqlite", sqliteBackend],
  ["postgres", postgresBackend],
];

/** Runs SQL on its own connection, bypassing the store; returns the rows of the last statement. */
export async function rawSql(url: string, text: string): Promise<Record<string, unknown>[]> {
  if (isPostgresUrl(url)) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query(text);
      return (Array.isArray(r) ? r.at(-1) : r).rows;
    } finally {
      await c.end();
    }
  }
  const db = new SqliteDatabase(url);
  try {
    const stmt = db.prepare(text);
    return stmt.reader ? (stmt.all() as Record<string, unknown>[]) : (stmt.run(), []);
  } finally {
    db.close();
  }
}

export interface Worker<T> {
  /** resolves once the worker has opened its store */
  ready: Promise<void>;
  /** lets it start its work (closes its stdin) */
  go(): void;
  result: Promise<T>;
}

/**
 * Starts test/helpers/store-worker.ts in a child process: a second service instance. It opens the
 * store, reports ready, and waits for `go()`, so several workers really race.
 */
export function startWorker<T>(args: string[]): Worker<T> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "store-worker.ts"), ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout.on("data", (d) => {
    out += d;
    if (out.startsWith("ready\n")) onReady();
  });
  child.stderr.on("data", (d) => (err += d));
  const result = new Promise<T>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`store worker exited ${code}: ${err}`));
      try {
        resolve(JSON.parse(out.slice("ready\n".length)) as T);
      } catch {
        reject(new Error(`store worker printed no JSON: ${out}${err}`));
      }
    });
  });
  // a worker that dies before it is ready must not leave `ready` pending forever
  result.catch(() => onReady());
  return { ready, go: () => child.stdin.end(), result };
}
