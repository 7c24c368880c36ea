/**
 * Fleet load: N simulated hosts each attesting every `interval` seconds against `tpmtrust serve`
 * (a child process) on loopback for `seconds`, with evidence pre-generated in software in the exact
 * TPM formats (quotes signed by each host's AK over nonces seeded in the database, over the PCRs
 * of the RHEL 8 fixture log, judged against its baseline). The fleet is seeded in bulk as one in
 * its steady state: every host registered with its EK certificate and bound AK, healthy since its
 * last attestation, so each verdict keeps its host's health; and, as the agent does with a log that
 * passed before, hosts name the log by its SHA-256, sending it again only when the service asks
 * (ERR_EVENTLOG_REQUIRED: this instance has not judged it yet). Open loop: every request is due at its
 * scheduled time (hosts phase-shifted evenly) and waits for one of the client's sockets from then,
 * so a slow server shows as latency, not as a politer load; the generator reports how late it
 * noticed a request was due (its own lag) and its CPU, so that a generator that cannot keep up is
 * told apart from a server that cannot. Every answer must be 200 with verdict "pass"; anything
 * else is an error.
 *
 *   npm run load [-- --hosts 10000 --seconds 60 --interval SECONDS --db sqlite|postgres]
 *
 * The interval defaults to the run's length: every host of the fleet attests once in the window.
 * PostgreSQL is a durable cluster (fsync and synchronous_commit on), as in production.
 *
 * `npm run bench` runs the full-size figure (100,000 hosts × 100 s, SQLite); the test suite a small one.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { Agent } from "node:http";
import os from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { httpCall, median, type BenchFigure } from "./lib.js";
import { openStore } from "../src/store/index.js";
import { addFleetBaseline, evidenceJson, seedFleet, softHost, spawnServe, type Quote } from "../test/helpers/software-fleet.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { rawSql } from "../test/helpers/store.js";

export interface LoadOptions {
  hosts: number;
  seconds: number;
  /** seconds between two attestations of one host */
  interval: number;
  db: "sqlite" | "postgres";
  /** requests in flight at most (the client's sockets) */
  concurrency?: number;
}

/** One window of the run (by scheduled time): what was offered, sent and answered, and how fast. */
export interface LoadWindow {
  /** seconds from the start */
  from: number;
  to: number;
  /** requests scheduled in the window, per second */
  offeredPerSecond: number;
  /** requests the generator sent in the window (by the time it sent them), per second */
  sentPerSecond: number;
  /** answers received in the window, per second */
  answeredPerSecond: number;
  errors: number;
  /** latency of the requests scheduled in the window, ms from the scheduled time to the answer */
  p50Ms: number;
  p99Ms: number;
  /** the generator's own lag: ms from the scheduled time to its queueing the request, 99th percentile */
  sendLagP99Ms: number;
  /** the service's main thread's share of one core (sampled each second) */
  serverMainThreadShare: number;
}

export interface LoadReport {
  hosts: number;
  seconds: number;
  db: string;
  /** seconds spent seeding hosts, EK certificates, AKs, nonces and quotes */
  seedSeconds: number;
  /** seconds from the service's start to the end of its first trust sweep (every host's EK trust evaluated once) */
  warmSeconds: number;
  offeredPerSecond: number;
  attestations: number;
  errors: number;
  firstErrors: string[];
  /** attestations sent again with the event log itself after the service asked for it (ERR_EVENTLOG_REQUIRED) */
  logsResent: number;
  windows: LoadWindow[];
  /** achieved rate per window (answers received in it) */
  windowRates: number[];
  achievedPerSecond: number;
  /** ms from the scheduled time to the answer (what a host sees, queueing included) */
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** p99 latency of the requests scheduled in each window */
  windowP99Ms: number[];
  /** ms of GET /healthz on the same server and client before the load */
  healthzMs: number;
  /**
   * Whether the generator kept to its schedule: its 99th-percentile lag, and its CPU (user + system)
   * over the run as a share of one core. `bottleneck`: its p99 lag was over 100 ms in some window,
   * i.e. the load offered was not the load queued.
   */
  generator: { sendLagP99Ms: number; cpuShareOfOneCore: number; bottleneck: boolean };
  /**
   * The service process's CPU (user + system, all its threads; not PostgreSQL's processes) over
   * the run: per attestation answered, and as a share of one core; and its main thread's share of
   * one core. That thread runs the requests and the database statements (quotes go to worker
   * threads while it is busy, `serve --verify-threads`), so its share near 1 means the service,
   * not the generator, sets the pace.
   */
  server: { cpuMsPerAttestation: number; cpuShareOfOneCore: number; mainThreadShareOfOneCore: number };
  /** with --db postgres: the cluster's processes' CPU over the run (on the same machine, the two cores are shared) */
  database?: { cpuMsPerAttestation: number; cpuShareOfOneCore: number };
}

/** A /proc stat file's parent pid and CPU time (user + system) in ms (Linux: fields 4, 14 and 15; clock ticks of 10 ms). */
function procStat(path: string): { ppid: number; cpuMs: number } {
  const fields = readFileSync(path, "utf8").replace(/^.*\) /s, "").split(" ");
  return { ppid: Number(fields[1]), cpuMs: (Number(fields[11]) + Number(fields[12])) * 10 };
}

/** CPU time (ms) a process has used, or with `thread` one of its threads (its main thread's id is the process's). */
function cpuMsOf(pid: number, thread?: number): number {
  return procStat(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`).cpuMs;
}

/** CPU time (ms) of a PostgreSQL cluster's processes now running: its postmaster's children (backends, writers). */
function clusterCpuMs(postmaster: number): number {
  let ms = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = procStat(`/proc/${pid}/stat`);
      if (stat.ppid === postmaster) ms += stat.cpuMs;
    } catch {
      // ended meanwhile
    }
  }
  return ms;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

export async function runLoad(o: LoadOptions, log: (msg: string) => void = () => undefined): Promise<LoadReport> {
  const rounds = Math.max(1, Math.round(o.seconds / o.interval));
  const dir = mkdtempSync(join(os.tmpdir(), "tpmtrust-load-"));
  const pg = o.db === "postgres" ? await startPostgres({ durable: true }) : undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency ?? 64 });
  try {
    const db = pg ? await pg.createDatabase() : join(dir, "load.db");
    log(`seeding ${o.hosts} hosts and ${o.hosts * rounds} quotes (${o.db})`);
    const seedStart = performance.now();
    const hosts = Array.from({ length: o.hosts }, (_, i) => softHost(`host-${String(i).padStart(6, "0")}`));
    let quotes: Quote[][];
    {
      const store = await openStore(db);
      try {
        await addFleetBaseline(store);
        const at = Date.now();
        // an hour to spare: seeding, the first sweep and a slow server's backlog all come before a late nonce is used
        quotes = await seedFleet(store, hosts, rounds, { ttlMs: (o.seconds + 3600) * 1000, healthy: { at, deadlineAt: at + (o.seconds + 3600) * 1000 } });
      } finally {
        await store.close();
      }
    }
    const seedSeconds = (performance.now() - seedStart) / 1000;
    log(`seeded in ${seedSeconds.toFixed(1)} s`);
    const adminTokenFile = join(dir, "admin-token");
    const server = await spawnServe(db, adminTokenFile);
    try {
      // a service that has run a while has evaluated every host's EK trust once (its first trust
      // sweep, or the host's last attestation) and keeps the outcome until the trust changes: wait
      // for the first sweep, so the run measures that steady state, not a cold cache
      const warmStart = performance.now();
      const admin = readFileSync(adminTokenFile, "utf8").trim();
      for (;;) {
        const r = await httpCall(agent, `${server.url}/metrics`, "GET", undefined, { authorization: `Bearer ${admin}` });
        if (Number(/^tpmtrust_trust_sweeps_total (\S+)$/m.exec(r.body)?.[1] ?? 0) >= 1) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      const warmSeconds = (performance.now() - warmStart) / 1000;
      log(`first trust sweep done ${warmSeconds.toFixed(1)} s after start`);
      // the bulk seeding and that sweep's writes left work a database in its steady state has done
      // long ago (PostgreSQL: dirty pages to write out, dead rows to vacuum, planner statistics;
      // SQLite: a long WAL): do it now, not during the measured run
      for (const sql of pg ? ["VACUUM ANALYZE", "CHECKPOINT"] : ["PRAGMA wal_checkpoint(TRUNCATE)"]) await rawSql(db, sql);
      const healthz: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        await httpCall(agent, `${server.url}/healthz`, "GET");
        healthz.push(performance.now() - t);
      }
      // host h's round k is due at start + (k·interval + h·interval/hosts) seconds: in order of i
      const schedule = Array.from({ length: rounds * o.hosts }, (_, i) => ({ host: i % o.hosts, round: Math.floor(i / o.hosts), dueMs: (Math.floor(i / o.hosts) * o.interval + ((i % o.hosts) * o.interval) / o.hosts) * 1000 }));
      log(`load: ${schedule.length} attestations over ${o.seconds} s`);
      /** per request: scheduled, due-noticed, sent and answered times (ms from the start), and whether it failed */
      const done: { dueMs: number; queuedMs: number; sentMs: number; doneMs: number; failed: boolean }[] = [];
      const firstErrors: string[] = [];
      let errors = 0;
      /** requests the service answered with ERR_EVENTLOG_REQUIRED, sent again with the log */
      let logsResent = 0;
      const concurrency = o.concurrency ?? 64;
      const cpu = process.cpuUsage();
      const serverCpu = cpuMsOf(server.child.pid!);
      const mainCpu = cpuMsOf(server.child.pid!, server.child.pid!);
      const dbCpu = pg ? clusterCpuMs(pg.pid) : 0;
      const start = performance.now();
      // the service's main thread's CPU each second, for its share per window
      const mainCpuAt: { ms: number; cpuMs: number }[] = [{ ms: 0, cpuMs: mainCpu }];
      const sampler = setInterval(() => mainCpuAt.push({ ms: performance.now() - start, cpuMs: cpuMsOf(server.child.pid!, server.child.pid!) }), 1000);
      // Open loop with bounded memory: a request joins the queue at its scheduled time whatever the
      // server's pace, and its body is built only when a socket takes it; time spent queued counts
      // in its latency. The generator's own lag is how late it noticed a request was due.
      await new Promise<void>((resolve) => {
        const queue: { i: number; queuedMs: number }[] = [];
        let head = 0;
        let next = 0;
        let inFlight = 0;
        let timer: NodeJS.Timeout | undefined;
        const send = (i: number, queuedMs: number) => {
          const s = schedule[i];
          const sentMs = performance.now() - start;
          inFlight++;
          const q = quotes[s.host][s.round];
          const url = `${server.url}/v1/attestations`;
          // the log by its hash, as the agent sends a log that passed before; the log itself when the service asks for it
          httpCall(agent, url, "POST", evidenceJson(q, { log: "sha256" }))
            .then((r) => (r.status === 422 && JSON.parse(r.body).code === "ERR_EVENTLOG_REQUIRED" ? ((logsResent++), httpCall(agent, url, "POST", evidenceJson(q))) : r))
            .then((r) => {
              if (r.status !== 200 || JSON.parse(r.body).verdict !== "pass") throw new Error(`HTTP ${r.status} ${r.body.slice(0, 200)}`);
              return false;
            })
            .catch((e: Error) => {
              errors++;
              if (firstErrors.length < 5) firstErrors.push(`host ${s.host} round ${s.round}: ${e.message}`);
              return true;
            })
            .then((failed) => {
              inFlight--;
              done.push({ dueMs: s.dueMs, queuedMs, sentMs, doneMs: performance.now() - start, failed });
              pump();
            });
        };
        const pump = () => {
          const now = performance.now() - start;
          while (next < schedule.length && schedule[next].dueMs <= now) queue.push({ i: next++, queuedMs: now });
          while (inFlight < concurrency && head < queue.length) {
            const q = queue[head++];
            send(q.i, q.queuedMs);
          }
          if (head > 4096 && head * 2 > queue.length) queue.splice(0, head), (head = 0);
          if (next === schedule.length && head === queue.length && inFlight === 0) {
            clearTimeout(timer);
            resolve();
            return;
          }
          if (next < schedule.length && timer === undefined) {
            timer = setTimeout(() => {
              timer = undefined;
              pump();
            }, Math.max(0, schedule[next].dueMs - (performance.now() - start)));
          }
        };
        pump();
      });
      clearInterval(sampler);
      const elapsedMs = performance.now() - start;
      const used = process.cpuUsage(cpu);
      const serverCpuMs = cpuMsOf(server.child.pid!) - serverCpu;
      const mainCpuMs = cpuMsOf(server.child.pid!, server.child.pid!) - mainCpu;
      const dbCpuMs = pg ? clusterCpuMs(pg.pid) - dbCpu : 0;
      const windowS = o.seconds / Math.max(1, Math.round(o.seconds / 10));
      const windows: LoadWindow[] = [];
      const sampleAt = (ms: number) => mainCpuAt.reduce((best, x) => (Math.abs(x.ms - ms) < Math.abs(best.ms - ms) ? x : best));
      /** the main thread's share of a core between the samples nearest to two times */
      const mainShare = (a: number, b: number) => {
        const [from, to] = [sampleAt(a), sampleAt(b)];
        return to.ms > from.ms ? (to.cpuMs - from.cpuMs) / (to.ms - from.ms) : 0;
      };
      for (let from = 0; from < o.seconds - 1e-9; from += windowS) {
        const [a, b] = [from * 1000, (from + windowS) * 1000];
        const scheduled = done.filter((x) => x.dueMs >= a && x.dueMs < b);
        const lat = scheduled.map((x) => x.doneMs - x.dueMs).sort((p, q) => p - q);
        const lag = scheduled.map((x) => x.queuedMs - x.dueMs).sort((p, q) => p - q);
        windows.push({
          from,
          to: from + windowS,
          offeredPerSecond: scheduled.length / windowS,
          sentPerSecond: done.filter((x) => x.sentMs >= a && x.sentMs < b).length / windowS,
          answeredPerSecond: done.filter((x) => x.doneMs >= a && x.doneMs < b).length / windowS,
          errors: scheduled.filter((x) => x.failed).length,
          p50Ms: percentile(lat, 50),
          p99Ms: percentile(lat, 99),
          sendLagP99Ms: percentile(lag, 99),
          serverMainThreadShare: mainShare(a, b),
        });
      }
      const latencies = done.map((x) => x.doneMs - x.dueMs).sort((p, q) => p - q);
      const lags = done.map((x) => x.queuedMs - x.dueMs).sort((p, q) => p - q);
      return {
        hosts: o.hosts,
        seconds: o.seconds,
        db: o.db,
        seedSeconds,
        warmSeconds,
        offeredPerSecond: o.hosts / o.interval,
        attestations: schedule.length,
        errors,
        firstErrors,
        logsResent,
        windows,
        windowRates: windows.map((w) => w.answeredPerSecond),
        achievedPerSecond: schedule.length / (elapsedMs / 1000),
        latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? 0 },
        windowP99Ms: windows.map((w) => w.p99Ms),
        healthzMs: median(healthz),
        generator: { sendLagP99Ms: percentile(lags, 99), cpuShareOfOneCore: (used.user + used.system) / 1000 / elapsedMs, bottleneck: windows.some((w) => w.sendLagP99Ms > 100) },
        server: { cpuMsPerAttestation: serverCpuMs / schedule.length, cpuShareOfOneCore: serverCpuMs / elapsedMs, mainThreadShareOfOneCore: mainCpuMs / elapsedMs },
        ...(pg ? { database: { cpuMsPerAttestation: dbCpuMs / schedule.length, cpuShareOfOneCore: dbCpuMs / elapsedMs } } : {}),
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
  const r = await runLoad({ hosts: 100_000, seconds: 100, interval: 100, db: "sqlite" }, (m) => process.stderr.write(`bench load: ${m}\n`));
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
      goal: "ratio 1.0: the server keeps up with a 100,000-host fleet attesting every 100 s",
      details: {
        serverCpuMsPerAttestation: Number(r.server.cpuMsPerAttestation.toFixed(2)),
        serverCpuShareOfOneCore: Number(r.server.cpuShareOfOneCore.toFixed(2)),
        serverMainThreadShareOfOneCore: Number(r.server.mainThreadShareOfOneCore.toFixed(2)),
        generatorCpuShareOfOneCore: Number(r.generator.cpuShareOfOneCore.toFixed(2)),
        firstTrustSweepSeconds: Number(r.warmSeconds.toFixed(1)),
      },
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
  const f = (n: number) => n.toFixed(0).padStart(6);
  process.stderr.write(
    [
      `load: ${report.attestations} attestations, ${report.errors} errors, p50 ${report.latencyMs.p50.toFixed(0)} ms, p99 ${report.latencyMs.p99.toFixed(0)} ms; generator: send lag p99 ${report.generator.sendLagP99Ms.toFixed(0)} ms, CPU ${(report.generator.cpuShareOfOneCore * 100).toFixed(0)}% of a core${report.generator.bottleneck ? " (it was the bottleneck: the load sent fell behind the load offered)" : ""}; server: ${report.server.cpuMsPerAttestation.toFixed(2)} ms CPU per attestation, ${(report.server.cpuShareOfOneCore * 100).toFixed(0)}% of a core (its main thread ${(report.server.mainThreadShareOfOneCore * 100).toFixed(0)}%)${report.database ? `; PostgreSQL: ${report.database.cpuMsPerAttestation.toFixed(2)} ms CPU per attestation, ${(report.database.cpuShareOfOneCore * 100).toFixed(0)}% of a core` : ""}`,
      "load:  window s  offered/s  sent/s  answered/s  errors  p50 ms  p99 ms  send lag p99 ms  service main thread",
      ...report.windows.map((w) => `load: ${f(w.from)}-${String(Math.round(w.to)).padEnd(4)} ${f(w.offeredPerSecond)}    ${f(w.sentPerSecond)}  ${f(w.answeredPerSecond)}     ${f(w.errors)}  ${f(w.p50Ms)}  ${f(w.p99Ms)}  ${f(w.sendLagP99Ms)}  ${(w.serverMainThreadShare * 100).toFixed(0)}%`),
    ].join("\n") + "\n",
  );
  process.stdout.write(JSON.stringify({ machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg() }, ...report }, null, 2) + "\n");
  process.exitCode = report.errors ? 1 : 0;
}
