import type { Command } from "commander";
import { TpmTrustError } from "../../errors.js";
import { action, printJson } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

export function register(program: Command): void {
  const audit = program.command("audit").description("the hash-chained audit log");
  audit
    .command("verify")
    .description("recompute the audit log's hash chain: exit 0 intact, 1 broken (an entry was edited, deleted or reordered)")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print one JSON object")
    .action(
      action((o: { db?: string; json?: boolean }) =>
        withStore(
          o.db,
          async (store) => {
            const v = await store.audit.verify();
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
            return 0;
          },
          { mustExist: true },
        ),
      ),
    );
}
