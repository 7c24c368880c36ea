/**
 * Host attestations per second end to end over HTTP on loopback: `tpmtrust serve` in a child
 * process (SQLite file, then PostgreSQL), a keep-alive client with 16 requests in flight. The
 * evidence is pre-generated in software with the exact TPM formats (64 hosts with ECC P-256 AKs bound
 * through the store, quotes over nonces issued through the store beforehand, the RHEL 8 event log of
 * the test fixtures judged against the baseline learned from it), so the TPM is not what is
 * measured. Each figure is compared with raw GET /healthz over the same client and server.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpCall, median, type BenchFigure } from "./lib.js";
import { openStore } from "../src/store/index.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { addFleetBaseline, evidenceJson, preQuotes, seedHosts, softHost, spawnServe } from "../test/helpers/software-fleet.js";

const CONCURRENCY = 16;
export const HOSTS = 64;
const RUNS = 5;
const RUN_MS = 1500;

/**
 * Seeds a database: HOSTS hosts of the fleet's hardware class (EK certificates from the test EK
 * root, bound software AKs), the class's baseline, and `n` evidence bodies (round robin over the
 * hosts) over nonces issued for them. `logByHash`: after each host's first body, the log is named
 * by its SHA-256.
 */
export async function seed(db: string, n: number, o: { logByHash?: boolean } = {}): Promise<string[]> {
  const store = await openStore(db);
  try {
    await addFleetBaseline(store);
    const hosts = Array.from({ length: HOSTS }, (_, h) => softHost(`bench-${h}`));
    await seedHosts(store, hosts);
    const quotes = await preQuotes(store, hosts, Math.ceil(n / HOSTS));
    return Array.from({ length: n }, (_, i) => evidenceJson(quotes[i % HOSTS][Math.floor(i / HOSTS)], { log: o.logByHash && i >= HOSTS ? "sha256" : "bytes" }));
  } finally {
    await store.close();
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

const call = (url: string, method: "GET" | "POST", body?: string) => httpCall(agent, url, method, body);

/** The store's query counters as GET /metrics reports them. */
export async function storeQueries(url: string, token: string): Promise<{ roundTrips: number; statements: number }> {
  const r = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`metrics: ${r.status}`);
  const text = await r.text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  return { roundTrips: value("tpmtrust_store_round_trips_total"), statements: value("tpmtrust_store_statements_total") };
}

/**
 * Attestations of `bodies` from index `from` on, sent to `urls` in turn; `next` fails unless the
 * verdict is pass; `used`: the next index.
 */
export function attestOver(urls: string[], bodies: string[], from: number): { next: () => Promise<boolean>; used: () => number } {
  let i = from;
  return {
    next: async () => {
      const k = i++;
      const body = bodies[k];
      if (body === undefined) throw new Error("evidence pool exhausted: raise the pool size");
      const r = await call(`${urls[k % urls.length]}/v1/attestations`, "POST", body);
      if (r.status !== 200 || JSON.parse(r.body).verdict !== "pass") throw new Error(`attestation failed: ${r.status} ${r.body.slice(0, 300)}`);
      return true;
    },
    used: () => i,
  };
}

/** Runs `op` with CONCURRENCY requests in flight for RUN_MS; requests per second. */
export async function rate(op: () => Promise<boolean>): Promise<number> {
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(RUN_MS) * 1_000_000n;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (process.hrtime.bigint() < end && (await op())) n++;
    }),
  );
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

/**
 * Steady state: hosts re-attesting an unchanged boot name their log by SHA-256 and are judged from
 * memory. `cold`: every attestation sends its 34 KB log, which is replayed and judged anew (no
 * judgement cache), as on a host's first attestation after boot.
 */
export async function measure(dialect: string, db: string, dir: string, cold = false): Promise<BenchFigure> {
  const bodies = await seed(db, 20_000, { logByHash: !cold });
  const tokenFile = join(dir, `admin-${Date.now()}`);
  const server = await spawnServe(db, tokenFile, cold ? ["--judgement-cache", "0"] : []);
  const url = server.url;
  try {
    const op = attestOver([url], bodies, 0);
    const attestOne = op.next;
    const health = async () => {
      const r = await call(`${url}/healthz`, "GET");
      if (r.status !== 200) throw new Error(`healthz: ${r.status}`);
      return true;
    };
    // warm-up: each host's first attestation (sends its log), the signing key, JIT, connections, SQLite's WAL
    for (let i = 0; i < HOSTS; i++) await attestOne();
    await rate(health);
    await rate(attestOne);
    const admin = readFileSync(tokenFile, "utf8").trim();
    const before = await storeQueries(url, admin);
    const measuredFrom = op.used();
    const s: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      b.push(await rate(health));
      s.push(await rate(attestOne));
    }
    const after = await storeQueries(url, admin);
    const attestations = op.used() - measuredFrom;
    const ms = median(s);
    const mb = median(b);
    return {
      name: `attestations end to end over HTTP, ${dialect}, ${cold ? "cold: every 34 KB event log sent, replayed and judged" : "steady state: unchanged boots, log named by SHA-256"} (3-bank quote, baseline, ${HOSTS} hosts, ${CONCURRENCY} in flight)`,
      unit: "attestations/s",
      median: ms,
      runs: s,
      baseline: { name: "GET /healthz, same client and server", median: mb },
      ratio: ms / mb,
      ...(dialect === "SQLite" && !cold ? { goal: ">= 1000 attestations/s" } : {}),
      // the service's background work (sweeps, checkpoints) during the runs is counted too
      details: {
        roundTripsPerAttestation: (after.roundTrips - before.roundTrips) / attestations,
        statementsPerAttestation: (after.statements - before.statements) / attestations,
      },
    };
  } finally {
    await server.stop();
  }
}

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-bench-attest-"));
  const out: BenchFigure[] = [];
  try {
    out.push(await measure("SQLite", join(dir, "bench.db"), dir));
    out.push(await measure("SQLite", join(dir, "bench-cold.db"), dir, true));
    // a durable cluster (fsync, synchronous_commit on), as in production
    const pg = await startPostgres({ durable: true });
    try {
      const p = await measure("PostgreSQL", await pg.createDatabase(), dir);
      out.push(p);
      const sqlite = out[0];
      out.push({
        name: "PostgreSQL per instance against SQLite, steady state (the two figures above)",
        unit: "attestations/s",
        median: p.median,
        runs: p.runs,
        baseline: { name: "SQLite steady state, same run", median: sqlite.median },
        ratio: p.median / sqlite.median,
        goal: "ratio >= 0.6",
      });
    } finally {
      await pg.stop();
    }
  } finally {
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
