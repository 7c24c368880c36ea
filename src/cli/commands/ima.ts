import type { Command } from "commander";
import { importKeylime } from "../../policy/keylime.js";
import { checkRuntimePolicy, compileRuntimePolicy, parseRuntimePolicy, type CompiledRuntimePolicy } from "../../policy/runtime.js";
import { IMA_BANKS, parseImaList, replayIma, templateHashMatches, type ImaList } from "../../verify/ima/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";

/** Reads and parses an IMA measurement list (binary or ASCII) named on the command line. */
export function loadImaList(path: string, what = "FILE"): ImaList {
  return parseImaList(readInput(path, what));
}

/** A runtime policy file: tpmtrust's (kind tpmtrust.runtime) or Keylime's (JSON or legacy allowlist). */
export function loadRuntimePolicy(path: string): CompiledRuntimePolicy {
  const bytes = readInput(path, "--policy");
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch {
    doc = undefined;
  }
  if (doc && typeof doc === "object" && (doc as { kind?: unknown }).kind === "tpmtrust.runtime") return parseRuntimePolicy(doc);
  return compileRuntimePolicy(importKeylime(bytes, "keylime"));
}

const hexPcrs = (p: Record<string, Record<number, Buffer>>) => Object.fromEntries(Object.entries(p).map(([b, v]) => [b, Object.fromEntries(Object.entries(v).map(([i, x]) => [i, x.toString("hex")]))]));

export function register(program: Command): void {
  const ima = program.command("ima").description("Linux IMA measurement lists: replay, check against a runtime policy (exit 0 ok, 1 failing entries, 2 unusable input)");

  ima
    .command("replay <file>")
    .description("replay a measurement list (binary or ASCII) into PCR 10 of every bank; print boot_aggregate")
    .option("--json", "print one JSON object")
    .action(
      action((file: string, o: { json?: boolean }) => {
        const list = loadImaList(file);
        const r = replayIma(list, IMA_BANKS);
        const boot = list.entries[0]?.path === "boot_aggregate" ? `${list.entries[0].digest.alg}:${list.entries[0].digest.digest.toString("hex")}` : undefined;
        const mismatches = list.entries.filter((e) => !templateHashMatches(e, list.templateHashAlg)).map((e) => ({ index: e.index, offset: e.offset, path: e.path }));
        if (o.json) {
          printJson({ format: list.format, templateHashAlg: list.templateHashAlg, entries: list.entries.length, pcrs: hexPcrs(r.pcrs), paddedSha1: hexPcrs(r.paddedSha1), ...(boot ? { bootAggregate: boot } : {}), templateHashMismatches: mismatches });
        } else {
          const lines = [`format ${list.format}, template hashes ${list.templateHashAlg}, ${list.entries.length} entries`];
          for (const [bank, pcrs] of Object.entries(r.pcrs)) for (const [pcr, v] of Object.entries(pcrs)) lines.push(`${bank}: ${pcr.padStart(2)}: ${v.toString("hex")}`);
          for (const [bank, pcrs] of Object.entries(r.paddedSha1)) for (const [pcr, v] of Object.entries(pcrs)) lines.push(`${bank} (zero-padded SHA-1, kernels before 5.8): ${pcr.padStart(2)}: ${v.toString("hex")}`);
          if (boot) lines.push(`boot_aggregate ${boot}`);
          for (const m of mismatches) lines.push(`entry ${m.index} at offset ${m.offset} (${m.path}): template hash does not match its data`);
          process.stdout.write(lines.join("\n") + "\n");
        }
        return mismatches.length ? 1 : 0;
      }),
    );

  ima
    .command("check <file>")
    .description("check every entry of a measurement list against a runtime policy (tpmtrust's or Keylime's)")
    .requiredOption("--policy <file>", "runtime policy: tpmtrust JSON, Keylime runtime policy JSON or Keylime allowlist")
    .option("--json", "print one JSON object")
    .action(
      action((file: string, o: { policy: string; json?: boolean }) => {
        const policy = loadRuntimePolicy(o.policy);
        const list = loadImaList(file);
        const r = checkRuntimePolicy(policy, list);
        if (o.json) printJson({ pass: r.failures.length === 0, policy: policy.policy.name, entries: r.checked, excluded: r.excluded, failures: r.failures, notes: r.notes, verifiedAgainstQuote: false });
        else {
          const lines = r.failures.length ? [`FAIL: ${r.failures.length} of ${r.checked} entries not allowed`] : [`PASS: ${r.checked} entries allowed (${r.excluded} excluded)`];
          for (const f of r.failures) lines.push(`entry ${f.index} ${f.path} ${f.digest}: ${f.code} ${f.reason}`);
          for (const n of r.notes) lines.push(`note: ${n}`);
          lines.push("note: not verified against a quote; the list is checked only for internal consistency");
          process.stdout.write(lines.join("\n") + "\n");
        }
        return r.failures.length ? 1 : 0;
      }),
    );
}
