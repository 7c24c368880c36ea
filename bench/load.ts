/**
 * Fleet load: N simulated hosts each attesting every `interval` seconds against `tpmtrust serve`
 * (a child process) on loopback for `seconds`, with evidence pre-generated in software in the exact
 * TPM formats (nonces issued through the store beforehand, quotes signed by each host's AK, the RHEL
 * 8 fixture log judged against its baseline). Open loop: every request is sent at its scheduled time
 * (hosts phase-shifted evenly), so a slow server shows as latency, not as a politer load. Every
 * answer must be 200 with verdict "pass"; anything else is an error.
 *
 *   npm run load [-- --hosts 10000 --seconds 60 --interval SECONDS --db sqlite|postgres]
 *
 * The interval defaults to the run's length: every host of the fleet attests once in the window.
 *
 * `npm run bench` runs the full-size figure (10,000 hosts × 60 s, SQLite); the test suite a small one.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { Agent } from "node:http";
import os from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { httpCall, median, type BenchFigure } from "./lib.js";
import { openStore } from "../src/store/index.js";
import { addFleetBaseline, evidenceJson, preQuotes, seedHosts, softHost, spawnServe, type Quote } from "../test/helpers/software-fleet.js";
import { startPostgres } from "../test/helpers/postgres.js";

export interface LoadOptions {
  hosts: number;
  seconds: number;
  /** seconds between two attestations of one host */
  interval: number;
  db: "sqlite" | "postgres";
  /** requests in flight at most (the client's sockets) */
  concurrency?: number;
}

export interface LoadReport {
  hosts: number;
  seconds: number;
  db: string;
  offeredPerSecond: number;
  attestations: number;
  errors: number;
  firstErrors: string[];
  /** achieved rate per window of `seconds / windows` */
  windowRates: number[];
  achievedPerSecond: number;
  /** ms from the scheduled time to the answer (what a host sees, queueing included) */
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** p99 latency of the requests scheduled in each window */
  windowP99Ms: number[];
  /** ms of GET /healthz on the same server and client before the load */
  healthzMs: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

export async function runLoad(o: LoadOptions, log: (msg: string) => void = () => undefined): Promise<LoadReport> {
  const rounds = Math.max(1, Math.round(o.seconds / o.interval));
  const dir = mkdtempSync(join(os.tmpdir(), "tpmtrust-load-"));
  const pg = o.db === "postgres" ? await startPostgres() : undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency ?? 64 });
  try {
    const db = pg ? await pg.createDatabase() : join(dir, "load.db");
    log(`seeding ${o.hosts} hosts and ${o.hosts * rounds} quotes (${o.db})`);
    const hosts = Array.from({ length: o.hosts }, (_, i) => softHost(`host-${String(i).padStart(5, "0")}`));
    let quotes: Quote[][];
    {
      const store = await openStore(db);
      try {
        await addFleetBaseline(store);
        await seedHosts(store, hosts);
        quotes = await preQuotes(store, hosts, rounds, (o.seconds + 600) * 1000);
      } finally {
        await store.close();
      }
    }
    const server = await spawnServe(db, join(dir, "admin-token"));
    try {
      const healthz: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        await httpCall(agent, `${server.url}/healthz`, "GET");
        healthz.push(performance.now() - t);
      }
      // host h's round k is due at start + (k·interval + h·interval/hosts) seconds
      const schedule = Array.from({ length: rounds * o.hosts }, (_, i) => ({ host: i % o.hosts, round: Math.floor(i / o.hosts), dueMs: (Math.floor(i / o.hosts) * o.interval + ((i % o.hosts) * o.interval) / o.hosts) * 1000 }));
      log(`load: ${schedule.length} attestations over ${o.seconds} s`);
      const latencies: number[] = [];
      /** per answer: scheduled time and latency, for per-window figures */
      const byDue: { dueMs: number; latency: number }[] = [];
      const doneAt: number[] = [];
      const firstErrors: string[] = [];
      let errors = 0;
      const start = performance.now();
      await Promise.all(
        schedule.map(async (s) => {
          const wait = start + s.dueMs - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          try {
            const r = await httpCall(agent, `${server.url}/v1/attestations`, "POST", evidenceJson(quotes[s.host][s.round]));
            if (r.status !== 200 || JSON.parse(r.body).verdict !== "pass") throw new Error(`HTTP ${r.status} ${r.body.slice(0, 200)}`);
          } catch (e) {
            errors++;
            if (firstErrors.length < 5) firstErrors.push(`host ${s.host} round ${s.round}: ${(e as Error).message}`);
          }
          const now = performance.now();
          latencies.push(now - start - s.dueMs);
          byDue.push({ dueMs: s.dueMs, latency: now - start - s.dueMs });
          doneAt.push(now - start);
        }),
      );
      const elapsedS = (performance.now() - start) / 1000;
      const windows = 6;
      const windowMs = (o.seconds * 1000) / windows;
      const windowRates = Array.from({ length: windows }, (_, w) => doneAt.filter((t) => t >= w * windowMs && t < (w + 1) * windowMs).length / (windowMs / 1000));
      latencies.sort((a, b) => a - b);
      const windowP99 = Array.from({ length: windows }, (_, w) =>
        percentile(
          byDue.filter((x) => x.dueMs >= w * windowMs && x.dueMs < (w + 1) * windowMs).map((x) => x.latency).sort((a, b) => a - b),
          99,
        ),
      );
      return {
        hosts: o.hosts,
        seconds: o.seconds,
        db: o.db,
        offeredPerSecond: o.hosts / o.interval,
        attestations: schedule.length,
        errors,
        firstErrors,
        windowRates,
        achievedPerSecond: schedule.length / elapsedS,
        latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? 0 },
        windowP99Ms: windowP99,
        healthzMs: median(healthz),
      };
    } finally {
      await server.stop();
    }
  } finally {
    agent.destroy();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bench figures: sustained rate per 10-s window against the offered rate, and p99 latency against /healthz. */
export async function run(): Promise<BenchFigure[]> {
  const r = await runLoad({ hosts: 10_000, seconds: 60, interval: 60, db: "sqlite" }, (m) => process.stderr.write(`bench load: ${m}\n`));
  if (r.errors) throw new Error(`load: ${r.errors} errors, e.g. ${r.firstErrors.join("; ")}`);
  const label = `${r.hosts} hosts × ${r.seconds} s, ${r.db}, 0 errors of ${r.attestations}`;
  return [
    {
      name: `attestations/s sustained (${label})`,
      unit: "attestations/s",
      median: median(r.windowRates),
      runs: r.windowRates,
      baseline: { name: "offered rate (hosts ÷ interval)", median: r.offeredPerSecond },
      ratio: median(r.windowRates) / r.offeredPerSecond,
      goal: "ratio 1.0: the server keeps up with a 10,000-host fleet attesting every minute",
    },
    {
      name: `p99 latency as hosts see it, per window (${label}; overall p50 ${r.latencyMs.p50.toFixed(0)} ms, p99 ${r.latencyMs.p99.toFixed(0)} ms)`,
      unit: "ms",
      median: median(r.windowP99Ms),
      runs: r.windowP99Ms,
      baseline: { name: "GET /healthz round trip", median: r.healthzMs },
      ratio: median(r.windowP99Ms) / r.healthzMs,
    },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const arg = (name: string, dflt: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const db = arg("db", "sqlite");
  if (db !== "sqlite" && db !== "postgres") throw new Error("--db must be sqlite or postgres");
  const report = await runLoad({ hosts: Number(arg("hosts", "10000")), seconds: Number(arg("seconds", "60")), interval: Number(arg("interval", arg("seconds", "60"))), db }, (m) => process.stderr.write(`load: ${m}\n`));
  process.stdout.write(JSON.stringify({ machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version }, ...report }, null, 2) + "\n");
  process.exitCode = report.errors ? 1 : 0;
}
