import type { Command } from "commander";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { writeStdout } from "../stdout.js";
// replay needs only these two; show and diff load interpretation, verification and policy when run
import { parseEventLog } from "../../verify/eventlog/parse.js";
import { replayEventLog } from "../../verify/eventlog/replay.js";
import type { EventLog, TcgEvent } from "../../verify/eventlog/index.js";

/** Reads and parses an event log named on the command line. */
export function loadEventLog(path: string, what = "FILE"): EventLog {
  return parseEventLog(readInput(path, what));
}

export const UNVERIFIED_NOTE = "note: not verified against a quote; the log is checked only for internal consistency";

function eventJson(ev: TcgEvent) {
  const raw = ev.decoded.kind === "raw" || ev.decoded.kind === "undecodable" || ev.decoded.kind === "no-action";
  return { index: ev.index, offset: ev.offset, pcr: ev.pcr, type: ev.type, typeName: ev.typeName, digests: ev.digests, decoded: ev.decoded, ...(raw ? { data: ev.data } : {}) };
}

function showText(log: EventLog, describeEvent: (ev: TcgEvent) => string): string {
  const lines = [`format ${log.format}, banks ${log.algorithms.map((a) => a.bank).join(", ")}, ${log.events.length} events`];
  for (const q of log.quirks) lines.push(`quirk ${q.name} at offset ${q.offset}: ${q.detail}`);
  const bank = log.algorithms.find((a) => a.bank === "sha256")?.bank ?? log.algorithms[0].bank;
  for (const ev of log.events) {
    const pcr = ev.pcr === 0xffffffff ? "-1" : String(ev.pcr);
    const digest = ev.digests[bank]?.toString("hex").slice(0, 16) ?? "-".repeat(16);
    const what = describeEvent(ev);
    lines.push(`${String(ev.index).padStart(4)}  PCR ${pcr.padStart(2)}  ${ev.typeName.padEnd(34)} ${bank}:${digest}…  ${what === ev.typeName ? "" : what}`.trimEnd());
  }
  return lines.join("\n") + "\n";
}

export function register(program: Command): void {
  const el = program.command("eventlog").description("TCG event logs: show, replay, diff (exit 0 ok, 1 differs, 2 unusable input)");

  el.command("show <file>")
    .description("list the events of a TCG event log with their decoded data")
    .option("--json", "print one JSON object (events, decoded data, unverified interpretation)")
    .action(
      action(async (file: string, o: { json?: boolean }) => {
        const log = loadEventLog(file);
        if (!o.json) {
          const { describeEvent } = await import("../../policy/events.js");
          writeStdout(showText(log, describeEvent));
          return 0;
        }
        const { interpretEvents } = await import("../../verify/eventlog/interpret.js");
        printJson({
          format: log.format,
          algorithms: log.algorithms,
          ...(log.specId ? { specId: log.specId } : {}),
          quirks: log.quirks,
          events: log.events.map(eventJson),
          interpretation: { verified: false, ...interpretEvents(log.events) },
        });
        return 0;
      }),
    );

  el.command("replay <file>")
    .description("replay the log into every bank it carries and print the resulting PCR values")
    .option("--json", "print one JSON object")
    .action(
      action((file: string, o: { json?: boolean }) => {
        const log = loadEventLog(file);
        const r = replayEventLog(log);
        if (o.json) {
          printJson({ format: log.format, pcrs: r.pcrs, ...(r.startupLocality !== undefined ? { startupLocality: r.startupLocality } : {}), unsupportedBanks: r.unsupportedBanks, incomplete: r.incomplete, quirks: log.quirks });
          return 0;
        }
        const lines: string[] = [];
        for (const [bank, pcrs] of Object.entries(r.pcrs)) {
          lines.push(`${bank}:`);
          for (const [pcr, v] of Object.entries(pcrs)) lines.push(`  ${pcr.padStart(2)}: ${v.toString("hex")}`);
        }
        if (r.startupLocality !== undefined) lines.push(`startup locality ${r.startupLocality}`);
        for (const b of r.unsupportedBanks) lines.push(`bank ${b}: not replayed (algorithm not supported here)`);
        for (const i of r.incomplete) lines.push(`${i.bank} PCR ${i.pcr}: not replayed (record ${i.record} has no ${i.bank} digest)`);
        for (const q of log.quirks) lines.push(`quirk ${q.name} at offset ${q.offset}: ${q.detail}`);
        writeStdout(lines.join("\n") + "\n");
        return 0;
      }),
    );

  el.command("diff <a> <b>")
    .description("compare two logs event by event, saying what each difference means (exit 1 when they differ)")
    .option("--json", "print one JSON object")
    .action(
      action(async (a: string, b: string, o: { json?: boolean }) => {
        const [{ evaluateBaseline, formatResult, learnBaseline }, { selfVerifyEventLog }] = await Promise.all([import("../../policy/baseline.js"), import("../../verify/eventlog/verify.js")]);
        const logA = loadEventLog(a, "A");
        const logB = loadEventLog(b, "B");
        const pcrs = [...new Set([...logA.events, ...logB.events].map((e) => e.pcr).filter((p) => p < 24))].sort((x, y) => x - y);
        const result = evaluateBaseline(learnBaseline("A", [logA], pcrs), selfVerifyEventLog(logB));
        if (o.json) printJson({ same: result.pass, diffs: result.diffs });
        else writeStdout((result.pass ? "the logs measure the same events\n" : formatResult(result).replace(/^FAIL A: /, "B differs from A: ")) + `${UNVERIFIED_NOTE}\n`);
        return result.pass ? 0 : 1;
      }),
    );
}
