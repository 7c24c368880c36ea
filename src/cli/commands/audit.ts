import type { Command } from "commander";
import { TpmTrustError } from "../../errors.js";
import type { AuditAnchor } from "../../store/index.js";
import { action, printJson } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

/** `SEQ:HASH`, as `audit verify` prints a head. */
function anchor(v: string, prev: AuditAnchor[] = []): AuditAnchor[] {
  const m = /^([1-9][0-9]{0,14}):([0-9a-fA-F]{64})$/.exec(v);
  if (!m) throw new TpmTrustError("ERR_USAGE", `--anchor ${v}: expected SEQ:HASH (a head printed by an earlier audit verify)`);
  return [...prev, { seq: Number(m[1]), hash: m[2].toLowerCase() }];
}

export function register(program: Command): void {
  const audit = program.command("audit").description("the hash-chained audit log");
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
