/**
 * The trust sweep over a fleet on SQLite: after a trust change that concerns none of the hosts (an
 * allow-list entry added), each host's cached evaluation proves it and none is judged again; the
 * baseline is reading the same hosts with their EKs in one SELECT, measured alternately in the same
 * run. The first (cold) sweep, which judges every host's certificate chain, is reported beside it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { median, type BenchFigure } from "./lib.js";
import { sweepTrust } from "../src/attest/health.js";
import { openStore } from "../src/store/index.js";
import { seedHosts, softHost } from "../test/helpers/software-fleet.js";

const HOSTS = 5_000;
const RUNS = 5;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-bench-sweep-"));
  const store = await openStore(join(dir, "t.db"));
  try {
    await seedHosts(
      store,
      Array.from({ length: HOSTS }, (_, i) => softHost(`host-${i}`)),
    );
    const now = () => Date.now();
    let judged = 0;
    const cold = await timed(async () => (judged = (await sweepTrust(store, now)).judged));
    const sweeps: number[] = [];
    const selects: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      selects.push(await timed(() => store.hosts.list()));
      await store.trust.addAllowlist(randomBytes(32).toString("hex"), { at: now() });
      sweeps.push(
        await timed(async () => {
          const r = await sweepTrust(store, now);
          if (r.judged !== 0 || r.hosts !== HOSTS) throw new Error(`a warm sweep judged ${r.judged} of ${r.hosts} hosts`);
        }),
      );
    }
    const m = median(sweeps);
    const b = median(selects);
    return [
      {
        name: `trust sweep after an unrelated trust change, ${HOSTS} hosts (none judged again)`,
        unit: "ms",
        median: m,
        runs: sweeps,
        baseline: { name: `SELECT of the ${HOSTS} hosts with their EKs`, median: b },
        ratio: m / b,
        details: { coldSweepMs: Math.round(cold), coldJudged: judged },
      },
    ];
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
