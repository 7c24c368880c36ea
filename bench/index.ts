import "reflect-metadata";
import os from "node:os";
import type { BenchFigure, BenchModule } from "./lib.js";

/** Every benchmark module of the project; each adds its figures to one report. */
const modules: Record<string, () => Promise<BenchModule>> = {
  quote: () => import("./quote.js"),
  eventlog: () => import("./eventlog.js"),
  ima: () => import("./ima.js"),
  attestation: () => import("./attestation.js"),
  scale: () => import("./scale.js"),
  keys: () => import("./keys.js"),
  provisioning: () => import("./provisioning.js"),
  ca: () => import("./ca.js"),
  load: () => import("./load.js"),
  startup: () => import("./startup.js"),
  sweep: () => import("./sweep.js"),
};

/** What every figure must carry: a median of at least three runs and a baseline measured in the same run. */
function problemsOf(f: BenchFigure): string[] {
  const p: string[] = [];
  if (!(f.runs.length >= 3)) p.push(`${f.runs.length} run(s), at least 3 needed for a median`);
  if (!f.baseline || !Number.isFinite(f.baseline.median) || f.baseline.median <= 0) p.push("no baseline measured in the same run");
  if (f.ratio === undefined || !Number.isFinite(f.ratio)) p.push("no ratio to the baseline");
  if (!Number.isFinite(f.median)) p.push("median is not a number");
  return p;
}

const wantMd = process.argv.includes("--md");
const only = process.argv.filter((a) => !a.startsWith("--")).slice(2);
const cpus = os.cpus();
const machine = {
  cpus: cpus.length,
  model: cpus[0]?.model,
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
};
const machineLine = `${machine.cpus}× ${machine.model}, ${machine.memGiB} GiB, Node ${machine.node}, ${machine.platform}`;
const figures: (BenchFigure & { area: string; machine: string; problems?: string[] })[] = [];
for (const [area, load] of Object.entries(modules)) {
  if (only.length && !only.includes(area)) continue;
  process.stderr.write(`bench: ${area}\n`);
  for (const f of await (await load()).run()) {
    const problems = problemsOf(f);
    figures.push({ area, machine: machineLine, ...f, ...(problems.length ? { problems } : {}) });
  }
}
const report = { machine, at: new Date().toISOString(), figures };
const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(1) : n.toPrecision(3));
if (wantMd) {
  const rows = figures.map(
    (f) =>
      `| ${f.area} | ${f.name} | ${fmt(f.median)} ${f.unit} (median of ${f.runs.length}) | ${f.baseline ? `${f.baseline.name}: ${fmt(f.baseline.median)}` : "—"} | ${f.ratio === undefined ? "—" : fmt(f.ratio)} | ${f.goal ?? ""} |`,
  );
  process.stdout.write([`Machine: ${machineLine}; ${report.at.slice(0, 10)}.`, "", "| area | figure | median | baseline (same run) | ratio | goal |", "|---|---|---|---|---|---|", ...rows].join("\n") + "\n");
} else {
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}
const bad = figures.filter((f) => f.problems);
for (const f of bad) process.stderr.write(`bench: ${f.area} "${f.name}": ${f.problems!.join("; ")}\n`);
process.exitCode = bad.length ? 1 : 0;
