/**
 * Event log throughput per real log: parse + replay of every bank + interpretation, against a
 * baseline of one SHA-256 over the same bytes in the same process. Goal: a 100 KB real log in
 * under 1 ms, i.e. at least 100 MB/s.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compare, timePerOp, type BenchFigure } from "./lib.js";
import { interpretEvents, parseEventLog, replayEventLog } from "../src/verify/eventlog/index.js";

const DIR = fileURLToPath(new URL("../test/fixtures/eventlogs/", import.meta.url));

export function fullPass(bytes: Buffer): void {
  const log = parseEventLog(bytes);
  replayEventLog(log);
  interpretEvents(log.events);
}

export async function run(): Promise<BenchFigure[]> {
  const figures: BenchFigure[] = [];
  for (const name of readdirSync(DIR).filter((f) => f.endsWith(".bin")).sort()) {
    const bytes = readFileSync(DIR + name);
    const f = await compare(`${name} (${bytes.length} B): parse + replay + interpret`, () => fullPass(bytes), "sha256 over the same bytes", () => createHash("sha256").update(bytes).digest(), {
      goal: "100 KB real log < 1 ms median (>= 100 MB/s)",
    });
    figures.push(f);
    // the same measurement in MB/s and µs per log, against the same SHA-256 baseline
    const mb = bytes.length / 1e6;
    const b = f.baseline!.median;
    figures.push({ name: `${name}: throughput`, unit: "MB/s", median: f.median * mb, runs: f.runs.map((r) => r * mb), baseline: { name: "sha256 over the same bytes", median: b * mb }, ratio: f.median / b });
    figures.push(timePerOp(f, `${name}: time per log`));
  }
  return figures;
}
