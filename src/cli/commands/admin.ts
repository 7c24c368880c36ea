import { type Command, Option } from "commander";
import { TpmTrustError } from "../../errors.js";
import type { AdminRole } from "../../store/index.js";
import { REQUESTER_NAME_PATTERN } from "../../ca/templates.js";
import { action, printJson } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

export function register(program: Command): void {
  const token = program.command("admin").description("administration of the service itself").command("token").description("admin API tokens (only their hash is stored)");
  token
    .command("create")
    .description("create an API token and print it once")
    .addOption(
      new Option("--role <role>", "admin (TrustedAdmins: may change trust and policy), auditor (read-only) or enroller (may only request certificates, as --identity)")
        .choices(["admin", "auditor", "enroller"])
        .makeOptionMandatory(),
    )
    .option("--identity <name>", "enroller tokens: the requester's identity, as certificate templates name it (requesters.enrollers)")
    .option("--label <text>", "what the token is for")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print one JSON object")
    .action(
      action((o: { role: AdminRole; identity?: string; label?: string; db?: string; json?: boolean }) => {
        if ((o.role === "enroller") !== (o.identity !== undefined)) throw new TpmTrustError("ERR_USAGE", "--identity goes with --role enroller, and an enroller token needs one");
        if (o.identity !== undefined && !new RegExp(REQUESTER_NAME_PATTERN).test(o.identity)) throw new TpmTrustError("ERR_USAGE", `--identity must match ${REQUESTER_NAME_PATTERN}`);
        return withStore(o.db, async (store) => {
          const at = Date.now();
          const t = await store.adminTokens.create({ role: o.role, label: o.label ?? null, identity: o.identity ?? null, at });
          await store.audit.append({ actor: "cli", action: "admin.token.create", subject: t.id, outcome: "success", details: { role: o.role, label: o.label ?? null, ...(t.identity ? { identity: t.identity } : {}) }, at });
          if (o.json) printJson({ id: t.id, role: t.role, label: t.label, ...(t.identity ? { identity: t.identity } : {}), token: t.token });
          else process.stdout.write(`${t.token}\n`);
        });
      }),
    );
  token
    .command("list")
    .description("list API tokens (never the tokens themselves)")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const list = await store.adminTokens.list();
          if (o.json) return printJson(list);
          for (const t of list) process.stdout.write(`${t.id}\t${t.role}${t.identity ? `:${t.identity}` : ""}\t${t.revokedAt ? "revoked" : "active"}\t${t.label ?? ""}\n`);
        }),
      ),
    );
  token
    .command("revoke <id>")
    .description("revoke an API token")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((id: string, o: { db?: string }) =>
        withStore(o.db, async (store) => {
          const at = Date.now();
          if (!(await store.adminTokens.revoke(id, at))) throw new TpmTrustError("ERR_NOT_FOUND", `no active token ${id}`);
          await store.audit.append({ actor: "cli", action: "admin.token.revoke", subject: id, outcome: "success", at });
        }),
      ),
    );
}
