/**
 * IMA verification throughput, against a SHA-256 over the same bytes in the same process:
 *  - a real kernel's list (826 entries): parse + template-hash check + replay (SHA-1 and SHA-256 banks)
 *    + runtime-policy lookup, in entries per second (goal ≥ 200,000/s on one core);
 *  - a 100-entry increment as the service checks it (ImaTracker: parse, replay from the running PCR 10
 *    to the quoted one, policy) in µs (goal < 1 ms);
 *  - a 1,000,000-digest runtime policy: loaded once per version (time), looked up in O(1) (the rate on
 *    the real list with it, against the same list with the list's own small policy), and an increment
 *    judged with it costing what it costs with the small one (the service compiles a policy once per
 *    version, never per check).
 */
import { hash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compare, median, timePerOp, type BenchFigure } from "./lib.js";
import { ImaTracker } from "../src/attest/ima.js";
import type { HostPolicy } from "../src/attest/policies.js";
import { checkRuntimePolicy, compileRuntimePolicy, learnRuntimePolicy, parseRuntimePolicy, type CompiledRuntimePolicy } from "../src/policy/runtime.js";
import type { PcrValues } from "../src/verify/eventlog/types.js";
import { encodeBinary, parseImaList, replayIma, verifyImaAgainstPcrs } from "../src/verify/ima/index.js";

const FILE = fileURLToPath(new URL("../test/fixtures/ima/ubuntu-ima-ng-sha1.bin", import.meta.url));

/** What the service does with a list: parse, replay to the quoted PCR 10 in both banks checking every template hash, judge each entry. */
function verifyList(bytes: Buffer, quoted: PcrValues, policy: CompiledRuntimePolicy): void {
  const facts = verifyImaAgainstPcrs(bytes, quoted);
  checkRuntimePolicy(policy, facts.list, undefined, { templateHashesChecked: true });
}

const perEntry = (f: BenchFigure, n: number, unit: string, name: string, goal?: string): BenchFigure => ({
  name,
  unit,
  median: f.median * n,
  runs: f.runs.map((r) => r * n),
  baseline: { name: f.baseline!.name, median: f.baseline!.median * n },
  ratio: f.ratio,
  ...(goal ? { goal } : {}),
});

export async function run(): Promise<BenchFigure[]> {
  const bytes = readFileSync(FILE);
  const list = parseImaList(bytes);
  const n = list.entries.length;
  const small = compileRuntimePolicy(learnRuntimePolicy("bench", list));
  const figures: BenchFigure[] = [];

  const quotedAll = replayIma(list, ["sha1", "sha256"]).pcrs;
  const whole = await compare(`real list (${n} entries, ${bytes.length} B): parse + template hash + replay sha1+sha256 to the quoted PCR 10 + policy`, () => verifyList(bytes, quotedAll, small), "sha256 over the same bytes", () => hash("sha256", bytes, "buffer"));
  // the floor: the hashes a two-bank replay cannot do without (per entry: the SHA-1 template hash
  // check, the bank's SHA-256 of the template data, one extend per bank), measured in the same run
  const extendSha1 = Buffer.alloc(40);
  const extendSha256 = Buffer.alloc(64);
  const hashes = () => {
    for (const e of list.entries) {
      hash("sha1", e.hashed, "binary");
      hash("sha256", e.hashed, "binary");
      hash("sha1", extendSha1, "binary");
      hash("sha256", extendSha256, "binary");
    }
  };
  const floor = await compare("the hashes alone", () => verifyList(bytes, quotedAll, small), "4 hashes per entry", hashes);
  figures.push({
    ...perEntry(whole, n, "entries/s", `IMA entries verified per second (${n}-entry real list)`, ">= 200,000 entries/s on one core"),
    details: { "hash floor (4 hashes per entry), entries/s": Math.round(floor.baseline!.median * n), "ratio to the hash floor": Number(floor.ratio!.toFixed(3)) },
  });

  // a 100-entry increment, server side: the last 100 entries of the real list, replayed from the
  // running PCR 10 the stored state holds after the others to the quoted one, and judged
  const tracker = new ImaTracker();
  const policy = { id: "bench", kind: "runtime", name: "bench", version: 1, doc: small } as unknown as HostPolicy;
  const boot = { resetCount: 1 };
  const quoted = replayIma(list, ["sha1", "sha256"]).pcrs;
  const before = n - 100;
  const head = tracker.judge("bench-host", { version: null }, boot, replayIma({ entries: list.entries.slice(0, before), templateHashAlg: "sha1" }, ["sha1", "sha256"]).pcrs, [policy], { startIndex: 0, bytes: encodeBinary(list.entries.slice(0, before)) }, 0);
  const prior = { state: head.write!.state, version: head.write!.record.version };
  const inc = encodeBinary(list.entries.slice(before));
  const check = () => {
    const j = tracker.judge("bench-host", prior, boot, quoted, [policy], { startIndex: before, bytes: inc }, 0);
    if (j.summary.covered !== 100 || j.summary.failures !== head.summary.failures) throw new Error("the bench increment did not verify");
  };
  const incF = await compare("100-entry increment checked by the service (ImaTracker.judge from the stored state)", check, "sha256 over the same bytes", () => hash("sha256", inc, "buffer"));
  figures.push(timePerOp(incF, "time per 100-entry increment (server side)", "< 1000 us"));

  // 1,000,000 digests: the real list's paths and digests among 1M others
  const doc = learnRuntimePolicy("million", list);
  for (let i = Object.keys(doc.digests).length; i < 1_000_000; i++) doc.digests[`/usr/lib/bench/f${i}`] = [hash("sha256", String(i), "hex")];
  const text = JSON.stringify(doc);
  const loads: number[] = [];
  const parses: number[] = [];
  let big: CompiledRuntimePolicy | undefined;
  for (let i = 0; i < 3; i++) {
    let t = process.hrtime.bigint();
    JSON.parse(text);
    parses.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    big = parseRuntimePolicy(JSON.parse(text));
    loads.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  figures.push({
    name: `1,000,000-digest runtime policy (${(text.length / 2 ** 20).toFixed(0)} MiB): load once per version (JSON.parse + validate + index)`,
    unit: "ms",
    median: median(loads),
    runs: loads,
    baseline: { name: "JSON.parse of the same text", median: median(parses) },
    ratio: median(loads) / median(parses),
    goal: "once per policy version, never per check",
  });
  // the policy's part alone (template hashes taken as checked): a lookup per entry, whatever the policy's size
  const judged = { templateHashesChecked: true };
  const lookup = await compare(`real list against the 1,000,000-digest policy`, () => checkRuntimePolicy(big!, list, undefined, judged), "the same list against its own small policy", () => checkRuntimePolicy(small, list, undefined, judged), { runs: 3 });
  figures.push(perEntry(lookup, n, "entries/s", "policy lookups per second with 1,000,000 digests (O(1); below a small policy's rate by the memory cache misses of a large table)"));
  // the service judges with the policy compiled once per version (attest/policies.ts keeps it by id): an
  // increment costs the same with 1,000,000 digests as with a few hundred
  const bigPolicy = { ...policy, id: "bench-big", doc: big } as HostPolicy;
  const bigHead = tracker.judge("bench-host", { version: null }, boot, replayIma({ entries: list.entries.slice(0, before), templateHashAlg: "sha1" }, ["sha1", "sha256"]).pcrs, [bigPolicy], { startIndex: 0, bytes: encodeBinary(list.entries.slice(0, before)) }, 0);
  const bigPrior = { state: bigHead.write!.state, version: bigHead.write!.record.version };
  const bigInc = await compare(
    "100-entry increment judged with the 1,000,000-digest policy",
    () => tracker.judge("bench-host", bigPrior, boot, quoted, [bigPolicy], { startIndex: before, bytes: inc }, 0),
    "the same increment with the small policy",
    check,
    { runs: 3 },
  );
  figures.push(timePerOp(bigInc, "time per 100-entry increment with the 1,000,000-digest policy (no reload per check: ratio ≈ 1)", "< 1000 us"));
  return figures;
}
