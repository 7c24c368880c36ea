/**
 * Throwaway PostgreSQL 15 clusters for tests: initdb into a temp dir (as user `postgres` when
 * running as root, since initdb refuses root), trust auth, listening only on 127.0.0.1 on a free
 * port with the unix socket inside the temp dir. Start ONE per test file and create a fresh
 * database per test with `createDatabase()`.
 *
 * A missing PostgreSQL always throws (CI or not) with an install hint: tests never skip silently.
 */
import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePorts } from "./ports.js";

export const PG_BIN = process.env.TPMTRUST_PG_BIN ?? "/usr/lib/postgresql/15/bin";
const SUPERUSER = "tpmtrust";

export interface PgCluster {
  /** a database created at start, ready to use */
  url: string;
  port: number;
  pid: number;
  /** Creates an empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** `pg_ctl stop -m fast`, then removes the cluster's directory. */
  stop(): Promise<void>;
}

const live = new Map<number, string>();
process.on("exit", () => {
  for (const [pid, dir] of live) {
    try {
      process.kill(pid, "SIGQUIT"); // immediate shutdown
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

function run(argv: string[], cwd: string): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, ...args] = asRoot ? ["runuser", "-u", "postgres", "--", ...argv] : argv;
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${argv[0]} failed: ${err.message}\n${stdout}${stderr}`)) : resolve(stdout),
    );
  });
}

let dbCounter = 0;

/** `durable`: fsync and synchronous_commit on, as in production (benchmarks); else both off for speed. */
export async function startPostgres(o: { durable?: boolean } = {}): Promise<PgCluster> {
  const initdb = join(PG_BIN, "initdb");
  const pgCtl = join(PG_BIN, "pg_ctl");
  if (!existsSync(initdb) || !existsSync(pgCtl)) {
    const why = process.env.CI === "true" ? "CI=true requires a real PostgreSQL" : "tests need a real PostgreSQL and never skip";
    throw new Error(`${initdb} not found (${why}). Install as root: scripts/setup.sh, or apt-get install -y postgresql (or set TPMTRUST_PG_BIN)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-pg-"));
  const data = join(dir, "data");
  const log = join(dir, "postgres.log");
  try {
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
      const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
      chownSync(dir, uid, gid);
    }
    await run([initdb, "-D", data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"], dir);
    for (let attempt = 1; attempt <= 5; attempt++) {
      const port = await freePorts(1);
      // Throwaway data: durability off for speed, unless asked for.
      const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir}${o.durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"}`;
      try {
        await run([pgCtl, "-D", data, "-l", log, "-w", "-t", "60", "-o", opts, "start"], dir);
      } catch (e) {
        const text = existsSync(log) ? readFileSync(log, "utf8") : "";
        if (/could not bind|Address already in use/i.test(text) && attempt < 5) continue;
        throw new Error(`${(e as Error).message}\n${text}`);
      }
      const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      live.set(pid, dir);
      const base = `postgres://${SUPERUSER}@127.0.0.1:${port}`;
      const createDatabase = async (name = `t${process.pid}_${++dbCounter}`): Promise<string> => {
        const c = new pg.Client({ connectionString: `${base}/postgres` });
        await c.connect();
        try {
          await c.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
        } finally {
          await c.end();
        }
        return `${base}/${encodeURIComponent(name)}`;
      };
      let stopped = false;
      return {
        url: await createDatabase("tpmtrust_test"),
        port,
        pid,
        createDatabase,
        async stop() {
          if (stopped) return;
          stopped = true;
          try {
            await run([pgCtl, "-D", data, "-m", "fast", "-w", "-t", "30", "stop"], dir);
          } catch {
            try {
              process.kill(pid, "SIGKILL");
            } catch {
              /* already gone */
            }
          }
          live.delete(pid);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    throw new Error("PostgreSQL did not start after 5 attempts");
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
