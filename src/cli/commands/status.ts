import type { Command } from "commander";
import type { StatusReport } from "../../attest/status.js";
import { adminOptions, withAdmin, type AdminOptions } from "../admin-client.js";
import { action, printJson } from "../run.js";

const MARK = { ok: "OK", missing: "MISSING", failing: "FAILING" } as const;

/** `tpmtrust status`: the configuration checklist (GET /v1/status), on the service with --server or on the local database. */
export function register(program: Command): void {
  adminOptions(
    program
      .command("status")
      .description("the configuration checklist: trusted TPM CAs, baselines per class, key servers reachable, providers and clusters, hosts by health, CA; each OK, MISSING or FAILING with the command that fixes it (exit 1 unless all OK)")
      .option("--json", "print JSON"),
  ).action(
    action((o: AdminOptions & { json?: boolean }) =>
      withAdmin(o, async (c) => {
        const r = await c.call<StatusReport>("GET", "/v1/status");
        if (o.json) printJson(r);
        else {
          for (const i of r.items) process.stdout.write(`${MARK[i.state].padEnd(8)} ${i.title}: ${i.detail}\n${i.fix ? `         fix: ${i.fix}\n` : ""}`);
        }
        return r.ok ? 0 : 1;
      }),
    ),
  );
}
