import type { Command } from "commander";
import { SETTINGS } from "../../attest/settings.js";
import { adminOptions, seg, withAdmin, type AdminOptions } from "../admin-client.js";
import { action, printJson } from "../run.js";

const show = (settings: Record<string, unknown>): void => {
  for (const key of Object.keys(SETTINGS)) {
    const v = settings[key];
    process.stdout.write(`${key}\t${v === undefined ? "(unset)" : Array.isArray(v) ? v.join(",") : String(v)}\n`);
  }
};

/** `tpmtrust config …`: run-time settings (src/attest/settings.ts) through /v1/config (--server, else the local database). */
export function register(program: Command): void {
  const config = program
    .command("config")
    .description(`run-time settings of the service, stored in its database: ${Object.entries(SETTINGS).map(([k, v]) => `${k} (${v.description})`).join("; ")}`);
  adminOptions(config.command("show").description("every setting and its value").option("--json", "print JSON (only the settings that are set)")).action(
    action((o: AdminOptions & { json?: boolean }) =>
      withAdmin(o, async (c) => {
        const s = await c.call<Record<string, unknown>>("GET", "/v1/config");
        if (o.json) printJson(s);
        else show(s);
      }),
    ),
  );
  adminOptions(config.command("set <key> <value>").description(`set one setting (keys: ${Object.keys(SETTINGS).join(", ")}); audited`)).action(
    action((key: string, value: string, o: AdminOptions) => withAdmin(o, async (c) => show(await c.call<Record<string, unknown>>("PUT", `/v1/config/${seg(key)}`, { value })))),
  );
  adminOptions(config.command("unset <key>").description("return one setting to its default; audited")).action(
    action((key: string, o: AdminOptions) => withAdmin(o, async (c) => show(await c.call<Record<string, unknown>>("DELETE", `/v1/config/${seg(key)}`)))),
  );
}
