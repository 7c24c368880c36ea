/**
 * Benchmark primitives. Every figure is a median over several runs and is reported with the ratio
 * to a baseline measured in the same process, so results compare across machines.
 */
import { request, type Agent } from "node:http";

export interface BenchFigure {
  name: string;
  unit: string;
  median: number;
  runs: number[];
  baseline?: { name: string; median: number };
  ratio?: number;
  goal?: string;
  /** further figures of the same measurement */
  details?: Record<string, number | string>;
}

/** Runs `fn` repeatedly for about `ms` milliseconds and returns operations per second. */
export async function opsPerSecond(fn: () => unknown | Promise<unknown>, ms = 300): Promise<number> {
  for (let i = 0; i < 20; i++) await fn(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while ((elapsed = process.hrtime.bigint() - start) < limit) {
    await fn();
    n++;
  }
  return n / (Number(elapsed) / 1e9);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Measures `subject` and `baseline` alternately `runs` times; the ratio is subject/baseline. */
export async function compare(
  name: string,
  subject: () => unknown | Promise<unknown>,
  baselineName: string,
  baseline: () => unknown | Promise<unknown>,
  opts: { runs?: number; ms?: number; unit?: string; goal?: string } = {},
): Promise<BenchFigure> {
  const runs = opts.runs ?? 5;
  const s: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < runs; i++) {
    b.push(await opsPerSecond(baseline, opts.ms));
    s.push(await opsPerSecond(subject, opts.ms));
  }
  const ms = median(s);
  const mb = median(b);
  return { name, unit: opts.unit ?? "ops/s", median: ms, runs: s, baseline: { name: baselineName, median: mb }, ratio: ms / mb, goal: opts.goal };
}

/** A `compare` figure in ops/s restated as microseconds per operation, against the same baseline. */
export function timePerOp(f: BenchFigure, name: string, goal?: string): BenchFigure {
  const b = f.baseline!.median;
  return { name, unit: "us", median: 1e6 / f.median, runs: f.runs.map((r) => 1e6 / r), baseline: { name: f.baseline!.name, median: 1e6 / b }, ratio: b / f.median, ...(goal ? { goal } : {}) };
}

/** One HTTP request over `agent` (keep-alive), its status and body; for benchmarks against a server on loopback. */
export function httpCall(agent: Agent, url: string, method: "GET" | "POST", body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: body ? { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A benchmark module exports `run(): Promise<BenchFigure[]>` and is listed in bench/index.ts. */
export type BenchModule = { run: () => Promise<BenchFigure[]> };
