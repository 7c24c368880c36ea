/**
 * Long fuzz run (`npm run fuzz [-- --minutes 30 --seed N --only parsers|api]`): the generators of
 * the CI robustness suite without its bounds. Rounds alternate between every parser of untrusted
 * input and every operation of a real server over HTTP until the time is up; the first contract
 * violation stops the run with its counterexample and the seed to replay it (exit 1).
 */
import "reflect-metadata";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { startServer } from "../../src/server/serve.js";
import { contractViolation, operationsOf, requestsFor, send } from "../robustness/api-fuzz.js";
import { breaksContract, inputsFor, PARSERS } from "../robustness/parsers.js";

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const minutes = Number(arg("minutes") ?? 10);
const only = arg("only");
const seed = Number(arg("seed") ?? Date.now() % 2 ** 31);
const deadline = Date.now() + minutes * 60_000;
const RUNS_PER_ROUND = 2000;
const counts = { parserInputs: 0, requests: 0, rounds: 0 };
const log = (m: string) => process.stderr.write(`fuzz: ${m}\n`);

function fail(what: string, detail: string): never {
  log(`FAILED ${what} (seed ${seed}): ${detail}`);
  process.exit(1);
}

async function parserRound(round: number): Promise<void> {
  for (const p of PARSERS) {
    if (Date.now() > deadline) return;
    const r = fc.check(
      fc.property(inputsFor(p), (input) => {
        counts.parserInputs++;
        return breaksContract(p, input) === undefined;
      }),
      { numRuns: RUNS_PER_ROUND, seed: seed + round },
    );
    if (r.failed) fail(p.name, `input ${fc.stringify(r.counterexample)}: ${String(breaksContract(p, r.counterexample![0]))}`);
  }
}

async function apiRound(round: number, base: string, creds: { admin: string; auditor: string }, ops: ReturnType<typeof operationsOf>): Promise<void> {
  for (const op of ops) {
    if (Date.now() > deadline) return;
    const r = await fc.check(
      fc.asyncProperty(requestsFor(base, op, creds), async (req) => {
        counts.requests++;
        return contractViolation(op, await send(req)) === undefined;
      }),
      { numRuns: RUNS_PER_ROUND / 10, seed: seed + round },
    );
    if (r.failed) {
      const req = r.counterexample![0];
      fail(`${op.method} ${op.path}`, `${req.method} ${req.url} ${req.body?.slice(0, 500) ?? ""} → ${contractViolation(op, await send(req))}`);
    }
  }
}

log(`seed ${seed}, ${minutes} min, ${only ?? "parsers and api"}`);
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-fuzz-"));
const server = only === "parsers" ? undefined : await startServer({ db: join(dir, "fuzz.db"), listen: "127.0.0.1:0", logger: false, attest: { sweepMs: 0 } });
try {
  const creds = server ? { admin: readFileSync(server.adminTokenFile!, "utf8").trim(), auditor: (await server.store.adminTokens.create({ at: Date.now(), role: "auditor" })).token } : undefined;
  const ops = server ? operationsOf(await (await fetch(`${server.url}/openapi.json`)).json()) : [];
  for (let round = 0; Date.now() < deadline; round++) {
    if (only !== "api") await parserRound(round);
    if (server && creds) await apiRound(round, server.url, creds, ops);
    counts.rounds++;
    log(`round ${round + 1}: ${counts.parserInputs} parser inputs, ${counts.requests} requests, no violation`);
  }
} finally {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ seed, minutes, ...counts, violations: 0 }) + "\n");
