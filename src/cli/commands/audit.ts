import { type Command, Option } from "commander";
import { TpmTrustError } from "../../errors.js";
import type { AuditAnchor, AuditEntry } from "../../store/index.js";
import { action, printJson } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

/** `SEQ:HASH`, as `audit verify` prints a head. */
function anchor(v: string, prev: AuditAnchor[] = []): AuditAnchor[] {
  const m = /^([1-9][0-9]{0,14}):([0-9a-fA-F]{64})$/.exec(v);
  if (!m) throw new TpmTrustError("ERR_USAGE", `--anchor ${v}: expected SEQ:HASH (a head printed by an earlier audit verify)`);
  return [...prev, { seq: Number(m[1]), hash: m[2].toLowerCase() }];
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** --since: ISO-8601, or a duration back from now (30m, 12h, 7d). */
export function sinceArg(v: string, now = Date.now()): number {
  const rel = /^([1-9][0-9]{0,8})([smhd])$/.exec(v);
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]];
  const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new TpmTrustError("ERR_USAGE", `--since ${v}: expected an ISO-8601 time (2026-01-31T12:00:00Z) or a duration back from now (30m, 12h, 7d)`);
  return t;
}

const OUTCOMES = { success: ["success"], failure: ["failure", "denied"], denied: ["denied"] } as const;

function line(e: AuditEntry): string {
  const d = (e.details ?? {}) as Record<string, unknown>;
  const why = [d.code, d.adcsEvent !== undefined ? `event ${d.adcsEvent}` : undefined, d.hresult !== undefined ? `hresult ${d.hresult}` : undefined].filter((x) => x !== undefined).join(" ");
  return [e.seq, new Date(e.at).toISOString(), e.actor, e.action, e.subject ?? "-", e.outcome, why || "-"].join("\t");
}

export function register(program: Command): void {
  const audit = program.command("audit").description("the hash-chained audit log");
  audit
    .command("list")
    .description("audit entries, newest first: every decision, denied requests, AD CS events 22/53 (ca.attestation.error, ca.request.denied)")
    .option("--action <action>", "only this action (ca.request.denied), or a prefix ending in * (ca.*)")
    .addOption(new Option("--outcome <outcome>", "success, failure (failures and denials) or denied").choices(Object.keys(OUTCOMES)))
    .option("--since <time>", "at or after: ISO-8601, or a duration back from now (30m, 12h, 7d)")
    .option("--subject <subject>", "only this subject (host name, EK hash, …)")
    .option("--limit <n>", "at most this many (1-10000)", "100")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print a JSON array")
    .action(
      action((o: { action?: string; outcome?: keyof typeof OUTCOMES; since?: string; subject?: string; limit: string; db?: string; json?: boolean }) => {
        if (!/^[1-9][0-9]{0,4}$/.test(o.limit) || Number(o.limit) > 10_000) throw new TpmTrustError("ERR_USAGE", `--limit ${o.limit}: expected 1 to 10000`);
        const since = o.since === undefined ? undefined : sinceArg(o.since);
        const prefix = o.action?.endsWith("*") ? o.action.slice(0, -1) : undefined;
        return withStore(
          o.db,
          async (store) => {
            const entries = await store.audit.list({
              ...(prefix !== undefined ? { actionPrefix: prefix } : o.action !== undefined ? { action: o.action } : {}),
              ...(o.outcome ? { outcomes: OUTCOMES[o.outcome] } : {}),
              ...(since !== undefined ? { since } : {}),
              ...(o.subject !== undefined ? { subject: o.subject } : {}),
              limit: Number(o.limit),
              newestFirst: true,
            });
            if (o.json) return printJson(entries);
            for (const e of entries) process.stdout.write(line(e) + "\n");
          },
          { mustExist: true },
        );
      }),
    );
  audit
    .command("verify")
    .description("recompute the audit log's hash chain: exit 0 intact, 1 broken (an entry was edited, deleted or reordered)")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--anchor <seq:hash>", "a head seen earlier and kept outside the database (repeatable): the chain must still hold it, so a log recomputed or cut back is found", anchor)
    .option("--json", "print one JSON object")
    .action(
      action((o: { db?: string; json?: boolean; anchor?: AuditAnchor[] }) =>
        withStore(
          o.db,
          async (store) => {
            const v = await store.audit.verify({ anchors: o.anchor });
            if (o.json) {
              printJson({ code: v.ok ? "OK" : "ERR_AUDIT_CHAIN_BROKEN", database: store.location, ...v });
              return v.ok ? 0 : 1;
            }
            if (!v.ok) {
              throw new TpmTrustError("ERR_AUDIT_CHAIN_BROKEN", `audit chain broken at seq ${v.firstBadSeq} (${v.problem}): ${v.reason}; ${v.verified} entries before it verify`, {
                firstBadSeq: v.firstBadSeq,
                problem: v.problem,
              });
            }
            process.stdout.write(`audit chain intact: ${v.verified} entries, head seq ${v.headSeq}, head hash ${v.headHash}\n`);
            process.stderr.write(`hint: keep ${v.headSeq}:${v.headHash} outside the database and pass it as --anchor next time\n`);
            return 0;
          },
          { mustExist: true },
        ),
      ),
    );
}
