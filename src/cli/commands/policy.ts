import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { TpmTrustError } from "../../errors.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { evaluateBaseline, evaluateSoftware, formatResult, learnBaseline, learnSoftware, parseBaseline, parsePcrList, parseSoftwarePolicy, type PolicyResult } from "../../policy/index.js";
import { referenceProblems } from "../../policy/baseline.js";
import { interpretEvents, selfVerifyEventLog } from "../../verify/eventlog/index.js";
import { loadEventLog, UNVERIFIED_NOTE } from "./eventlog.js";
import { withProgress } from "../progress.js";
import { importKeylime } from "../../policy/keylime.js";
import { learnRuntimePolicy } from "../../policy/runtime.js";
import { loadImaList } from "./ima.js";

function readJson(path: string, what: string): unknown {
  const text = readInput(path, what).toString("utf8");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `${what}: ${path} is not JSON: ${(e as Error).message}`, { path });
  }
}

/** Prints a policy document to --out, or to stdout when there is none. */
function emit(doc: unknown, out?: string): void {
  if (!out) return printJson(doc);
  try {
    writeFileSync(out, JSON.stringify(doc, null, 2) + "\n");
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `--out: cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path: out });
  }
  process.stderr.write(`wrote ${out}\n`);
}

function report(result: PolicyResult, json?: boolean): number {
  if (json) printJson({ ...result, verifiedAgainstQuote: false });
  else process.stdout.write(formatResult(result) + `${UNVERIFIED_NOTE}\n`);
  return result.pass ? 0 : 1;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function register(program: Command): void {
  const policy = program.command("policy").description("policies as JSON documents: TPM baselines, accepted boot software (exit 0 pass, 1 fail, 2 unusable input)");

  const baseline = policy.command("baseline").description("TPM baselines learned from reference hosts' event logs");
  baseline
    .command("create")
    .description("learn a baseline from one or more reference logs: events equal in all logs must match, events that differ may vary")
    .requiredOption("--name <name>", "baseline name, e.g. the hardware class")
    .requiredOption("--from <log>", "reference event log (repeat for several hosts)", collect)
    .option("--pcrs <list>", "PCRs to cover, e.g. 0-7 or 0,2,4-7", "0-7")
    .option("--out <file>", "write the baseline here instead of standard output")
    .option("--skip-validation", "learn it even from a log with Secure Boot off, debugging on or test signing (HGS -SkipValidation)")
    .action(
      action(async (o: { name: string; from: string[]; pcrs: string; out?: string; skipValidation?: boolean }) => {
        const pcrs = parsePcrList(o.pcrs);
        const logs = await withProgress("reading logs", o.from, (f) => f, (f) => loadEventLog(f, "--from"));
        const problems = logs.flatMap((log, i) => referenceProblems(interpretEvents(log.events)).map((p) => `${o.from[i]}: ${p}`));
        for (const p of problems) process.stderr.write(`warning: ${p}\n`);
        if (problems.length && !o.skipValidation) {
          throw new TpmTrustError("ERR_BASELINE_UNSAFE", `refusing to learn a baseline from ${problems.length === 1 ? "a reference log" : "reference logs"} a guarded host must not boot like (${problems.join("; ")}): use another reference host, or --skip-validation to accept it anyway`, { problems });
        }
        emit(learnBaseline(o.name, logs, pcrs), o.out);
        return 0;
      }),
    );
  baseline
    .command("check")
    .description("evaluate an event log against a baseline: pass, or each difference with its meaning")
    .requiredOption("--baseline <file>", "baseline JSON")
    .requiredOption("--log <file>", "the host's event log")
    .option("--json", "print one JSON object")
    .action(
      action((o: { baseline: string; log: string; json?: boolean }) => {
        const b = parseBaseline(readJson(o.baseline, "--baseline"));
        return report(evaluateBaseline(b, selfVerifyEventLog(loadEventLog(o.log, "--log"))), o.json);
      }),
    );

  const software = policy.command("software").description("accepted boot software: boot loaders, kernels, initrds");
  software
    .command("create")
    .description("extract the boot software (boot loader, kernel, initrd digests) of reference logs")
    .requiredOption("--name <name>", "policy name")
    .requiredOption("--from <log>", "reference event log (repeat for several)", collect)
    .option("--out <file>", "write the policy here instead of standard output")
    .action(
      action(async (o: { name: string; from: string[]; out?: string }) => {
        emit(learnSoftware(o.name, await withProgress("reading logs", o.from, (f) => f, (f) => loadEventLog(f, "--from"))), o.out);
        return 0;
      }),
    );
  software
    .command("check")
    .description("evaluate an event log's boot software against an accepted-software policy")
    .requiredOption("--policy <file>", "software policy JSON")
    .requiredOption("--log <file>", "the host's event log")
    .option("--json", "print one JSON object")
    .action(
      action((o: { policy: string; log: string; json?: boolean }) => {
        const p = parseSoftwarePolicy(readJson(o.policy, "--policy"));
        return report(evaluateSoftware(p, selfVerifyEventLog(loadEventLog(o.log, "--log"))), o.json);
      }),
    );

  const runtime = policy.command("runtime").description("runtime (IMA) policies: the files a Linux host may run");
  runtime
    .command("import")
    .description("convert a Keylime runtime policy (JSON, or legacy allowlist + exclude list) to a tpmtrust runtime policy")
    .requiredOption("--keylime <file>", "Keylime runtime policy JSON, legacy JSON allowlist or flat allowlist")
    .option("--exclude-list <file>", "Keylime exclude list (one regular expression a line) to add")
    .option("--name <name>", "policy name", "keylime")
    .option("--out <file>", "write the policy here instead of standard output")
    .action(
      action((o: { keylime: string; excludeList?: string; name: string; out?: string }) => {
        const excludes = o.excludeList === undefined ? undefined : readInput(o.excludeList, "--exclude-list").toString("utf8");
        emit(importKeylime(readInput(o.keylime, "--keylime"), o.name, excludes), o.out);
        return 0;
      }),
    );
  runtime
    .command("create")
    .description("learn a runtime policy from a reference host's IMA measurement list (binary or ASCII)")
    .requiredOption("--from <log>", "the reference host's measurement list")
    .option("--exclude <regex...>", "paths to leave out and not judge (regular expressions matched at the start of the path)")
    .option("--name <name>", "policy name", "runtime")
    .requiredOption("--out <file>", "write the policy here")
    .action(
      action((o: { from: string; exclude?: string[]; name: string; out: string }) => {
        emit(learnRuntimePolicy(o.name, loadImaList(o.from, "--from"), o.exclude ?? []), o.out);
        return 0;
      }),
    );
}
