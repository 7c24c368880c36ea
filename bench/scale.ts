/**
 * Scale-out on PostgreSQL: steady-state attestations (as in attestation.ts) against one `tpmtrust
 * serve`, then against two on the same database with the requests split evenly between them; the
 * figure is the aggregate rate of two against one. On a 2-core machine CPU is the ceiling (client,
 * servers and PostgreSQL share it), so the bench also samples pg_stat_activity while it runs:
 * the server-side time attestations spend waiting on locks (wait_event_type Lock), which stays ~0
 * when no lock is shared by all attestations.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { median, type BenchFigure } from "./lib.js";
import { attestOver, HOSTS, rate, seed } from "./attestation.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { FLEET_LOG, spawnServe, type ServeProcess } from "../test/helpers/software-fleet.js";

const RUNS = 5;
const SAMPLE_MS = 5;

/** Counts, every SAMPLE_MS until stopped, the tpmtrust sessions waiting on a lock; ms of lock waiting summed over sessions. */
function sampleLockWaits(url: string): { stop: () => Promise<number> } {
  const client = new pg.Client({ connectionString: url });
  let running = true;
  let waitedMs = 0;
  const done = (async () => {
    await client.connect();
    let last = performance.now();
    while (running) {
      const r = await client.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where application_name = 'tpmtrust' and wait_event_type = 'Lock'");
      const now = performance.now();
      waitedMs += r.rows[0].n * (now - last);
      last = now;
      await new Promise((res) => setTimeout(res, SAMPLE_MS));
    }
    await client.end();
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return waitedMs;
    },
  };
}

const withLog = (body: string) => body.replace(/"eventLogSha256":"[0-9a-f]+"/, `"eventLog":"${FLEET_LOG.toString("base64")}"`);

/** Warms the newest of `servers` up (each host's log once: its judgement cache is its own), then measures all of them. */
async function phase(pgUrl: string, servers: ServeProcess[], bodies: string[], from: number): Promise<{ runs: number[]; used: number; lockMsPerAttestation: number }> {
  const warm = attestOver([servers.at(-1)!.url], bodies.slice(from, from + HOSTS).map(withLog), 0);
  for (let h = 0; h < HOSTS; h++) await warm.next();
  const op = attestOver(
    servers.map((s) => s.url),
    bodies,
    from + HOSTS,
  );
  await rate(op.next);
  const counted = op.used();
  const runs: number[] = [];
  const sampler = sampleLockWaits(pgUrl);
  for (let i = 0; i < RUNS; i++) runs.push(await rate(op.next));
  const lockMs = await sampler.stop();
  return { runs, used: op.used(), lockMsPerAttestation: lockMs / (op.used() - counted) };
}

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-bench-scale-"));
  const pgc = await startPostgres({ durable: true });
  const servers: ServeProcess[] = [];
  try {
    const db = await pgc.createDatabase();
    const bodies = await seed(db, 24_000, { logByHash: true });
    servers.push(await spawnServe(db, join(dir, "admin-1")));
    const one = await phase(db, servers, bodies, 0);
    servers.push(await spawnServe(db, join(dir, "admin-2")));
    const two = await phase(db, servers, bodies, one.used);
    const m1 = median(one.runs);
    const m2 = median(two.runs);
    const lock = (p: typeof one) => p.lockMsPerAttestation.toFixed(3);
    return [
      {
        name: `PostgreSQL scale-out: aggregate steady-state attestations/s of 2 serve instances on one database, load split evenly (lock wait per attestation, sampled from pg_stat_activity: 1 instance ${lock(one)} ms, 2 instances ${lock(two)} ms)`,
        unit: "attestations/s",
        median: m2,
        runs: two.runs,
        baseline: { name: "1 serve instance, same database, same run", median: m1 },
        ratio: m2 / m1,
        goal: "ratio > 1 where CPU allows; lock wait ~0",
        details: { lockWaitMsPerAttestation1: one.lockMsPerAttestation, lockWaitMsPerAttestation2: two.lockMsPerAttestation },
      },
    ];
  } finally {
    for (const s of servers) await s.stop();
    await pgc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
