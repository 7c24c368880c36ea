import "reflect-metadata";
import os from "node:os";
import type { BenchFigure, BenchModule } from "./lib.js";

/** Every benchmark module of the project; each adds its figures to one report. */
const modules: Record<string, () => Promise<BenchModule>> = {
  quote: () => import("./quote.js"),
  eventlog: () => import("./eventlog.js"),
  keys: () => import("./keys.js"),
  provisioning: () => import("./provisioning.js"),
  ca: () => import("./ca.js"),
};

const wantMd = process.argv.includes("--md");
const only = process.argv.filter((a) => !a.startsWith("--")).slice(2);
const figures: (BenchFigure & { area: string })[] = [];
for (const [area, load] of Object.entries(modules)) {
  if (only.length && !only.includes(area)) continue;
  for (const f of await (await load()).run()) figures.push({ area, ...f });
}
const report = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
  at: new Date().toISOString(),
  figures,
};
if (wantMd) {
  const rows = figures.map((f) => `| ${f.area} | ${f.name} | ${f.median.toFixed(1)} ${f.unit} | ${f.baseline ? `${f.baseline.name}: ${f.baseline.median.toFixed(1)}` : ""} | ${f.ratio?.toFixed(3) ?? ""} | ${f.goal ?? ""} |`);
  process.stdout.write(["| area | figure | median | baseline | ratio | goal |", "|---|---|---|---|---|---|", ...rows].join("\n") + "\n");
} else {
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}
