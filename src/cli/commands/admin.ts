import { type Command, Option } from "commander";
import { TpmTrustError } from "../../errors.js";
import type { AdminRole, AdminToken } from "../../store/index.js";
import { adminOptions, seg, withAdmin, type AdminOptions } from "../admin-client.js";
import { action, printJson } from "../run.js";

/** `tpmtrust admin token …`: API tokens and the principals they name, through /v1/admin/tokens (--server, else the local database: the bootstrap). */
export function register(program: Command): void {
  const token = program.command("admin").description("administration of the service itself").command("token").description("admin API tokens (only their hash is stored)");
  adminOptions(
    token
      .command("create")
      .description("create an API token and print it once")
      .addOption(
        new Option("--role <role>", "admin (TrustedAdmins: may change trust and policy), auditor (read-only) or enroller (may only request certificates, as --identity)")
          .choices(["admin", "auditor", "enroller"])
          .makeOptionMandatory(),
      )
      .option("--name <principal>", "the administrator it speaks for (e.g. alice): audit entries name it (admin:alice), groups (config set admins.AREA) admit it, admin token revoke --name revokes it")
      .option("--identity <name>", "enroller tokens: the requester's identity, as certificate templates name it (requesters.enrollers)")
      .option("--label <text>", "what the token is for")
      .option("--json", "print one JSON object"),
  ).action(
    action((o: AdminOptions & { role: AdminRole; name?: string; identity?: string; label?: string; json?: boolean }) =>
      withAdmin(o, async (c) => {
        const t = await c.call<AdminToken & { token: string }>("POST", "/v1/admin/tokens", { role: o.role, ...(o.name ? { name: o.name } : {}), ...(o.label ? { label: o.label } : {}), ...(o.identity ? { identity: o.identity } : {}) });
        if (o.json) printJson({ id: t.id, role: t.role, label: t.label, ...(t.name ? { name: t.name } : {}), ...(t.identity ? { identity: t.identity } : {}), token: t.token });
        else process.stdout.write(`${t.token}\n`);
      }),
    ),
  );
  adminOptions(token.command("list").description("list API tokens with their principal (never the tokens themselves)").option("--name <principal>", "only this principal's tokens").option("--json", "print JSON")).action(
    action((o: AdminOptions & { name?: string; json?: boolean }) =>
      withAdmin(o, async (c) => {
        const list = await c.call<AdminToken[]>("GET", `/v1/admin/tokens${o.name ? `?name=${encodeURIComponent(o.name)}` : ""}`);
        if (o.json) return printJson(list);
        for (const t of list) process.stdout.write(`${t.id}\t${t.role}${t.identity ? `:${t.identity}` : ""}\t${t.name ?? "-"}\t${t.revokedAt ? "revoked" : "active"}\t${t.label ?? ""}\n`);
      }),
    ),
  );
  adminOptions(token.command("revoke [id]").description("revoke an API token by id, or every token of a principal with --name").option("--name <principal>", "revoke all of this principal's tokens")).action(
    action((id: string | undefined, o: AdminOptions & { name?: string }) => {
      if ((id === undefined) === (o.name === undefined)) throw new TpmTrustError("ERR_USAGE", "name a token id or --name PRINCIPAL (one of them)");
      return withAdmin(o, async (c) => {
        if (o.name !== undefined) {
          const r = await c.call<{ revoked: string[] }>("DELETE", `/v1/admin/principals/${seg(o.name)}`);
          process.stdout.write(`revoked ${r.revoked.length} token(s) of ${o.name}\n`);
        } else await c.call("DELETE", `/v1/admin/tokens/${seg(id!)}`);
      });
    }),
  );
}
