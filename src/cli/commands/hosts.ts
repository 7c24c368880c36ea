import { readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { type Command, Option } from "commander";
import type { EkAdmission, HostView } from "../../attest/hosts.js";
import { decodeHostIdentity } from "../../attest/identity.js";
import { confirmOnTerminal } from "../ask.js";
import { isTpmTrustError, TpmTrustError } from "../../errors.js";
import type { PolicyVersion } from "../../store/index.js";
import type { EkTrustMethod } from "../../verify/ek/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { adminOptions, seg, withAdmin, type AdminClient, type AdminOptions } from "../admin-client.js";
import { withProgress } from "../progress.js";

/** The identity file, checked here as the service checks it, so a bad file is named with its field before anything is sent. */
function readIdentity(path: string): unknown {
  const text = readInput(path, "host.json").toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `${path} is not JSON (expected the output of tpmtrust agent identify): ${(e as Error).message}`, { path });
  }
  decodeHostIdentity(json);
  return json;
}

function describe(h: HostView): string {
  const lines = [
    `name: ${h.name}`,
    `hardware class: ${h.hardwareClass}`,
    `policy version: ${h.policyVersion}`,
    `EK trust method: ${h.trustMethod ?? "-"}`,
    `health: ${h.health}${h.healthReason ? ` (${h.healthReason})` : ""}${h.disabledAt !== null ? ", disabled" : ""}`,
    `last attestation: ${h.lastAttestationAt ? new Date(h.lastAttestationAt).toISOString() : "never"}`,
  ];
  if (h.platform) lines.push(`TPM: ${JSON.stringify(h.platform)}`);
  for (const ek of h.eks) lines.push(`EK ${ek.nameHex}\n  ekHash ${ek.ekHash}\n  certificate ${ek.certificate ? `${ek.certificate.subject} (until ${ek.certificate.notAfter})` : "none"}`);
  for (const ak of h.aks) lines.push(`AK ${ak.nameHex} bound ${new Date(ak.boundAt).toISOString()}${ak.hasCertificate ? ", certified" : ""}`);
  return lines.join("\n") + "\n";
}

type Added = HostView & { ekTrust: { method: EkTrustMethod; eks: EkAdmission[]; warnings: string[] } };
const addHost = (c: AdminClient, body: { name: string; hardwareClass: string; policyVersion: PolicyVersion; allowlistEk?: boolean; identity: unknown }) => c.call<Added>("POST", "/v1/hosts", body);

/** `tpmtrust hosts …`: registration (Add-HgsAttestationTpmHost), listing, removal, through /v1/hosts (--server, else the local database). */
export function register(program: Command): void {
  const hosts = program.command("hosts").description("attested hosts: register from `tpmtrust agent identify` output, list, show, remove");
  adminOptions(
    hosts
      .command("add <hostJson>")
      .description("register a host from the JSON `tpmtrust agent identify` wrote; v2 (default) requires a trusted EK certificate; v1 admits a TPM without one by allow-listing its EK hash in the same step (audited)")
      .requiredOption("--name <name>", "host name")
      .requiredOption("--class <hwclass>", "hardware class (selects its baseline)")
      .addOption(new Option("--policy-version <v>", "HGS policy version").choices(["v2", "v1"]).default("v2"))
      .option("--json", "print JSON"),
  ).action(
    action((file: string, o: AdminOptions & { name: string; class: string; policyVersion: PolicyVersion; json?: boolean }) => {
      const identity = readIdentity(file);
      return withAdmin(o, async (c) => {
        const r = await addHost(c, { name: o.name, hardwareClass: o.class, policyVersion: o.policyVersion, ...(o.policyVersion === "v1" ? { allowlistEk: true } : {}), identity });
        if (o.json) return printJson(r);
        process.stdout.write(`registered ${r.name} (${r.policyVersion}, EK trusted by ${r.ekTrust.method})\n`);
        for (const e of r.ekTrust.eks) process.stdout.write(`  EK ${e.alg} ${e.ekHash}: ${e.registered ? `registered (${e.method}${e.allowlisted ? ", allow-listed now" : ""})` : `not registered: ${e.code} ${e.reason}`}\n`);
        for (const w of r.ekTrust.warnings) process.stderr.write(`warning: ${w}\n`);
      });
    }),
  );
  adminOptions(
    hosts
      .command("import <paths...>")
      .description("register many hosts at once from `tpmtrust agent identify` files (a folder: every *.json in it); each host is named after its file (web-01.json → web-01); v1 hosts need their EKs allow-listed first (unlike hosts add, import allow-lists nothing)")
      .requiredOption("--class <hwclass>", "hardware class of every host")
      .addOption(new Option("--policy-version <v>", "HGS policy version").choices(["v2", "v1"]).default("v2"))
      .option("--json", "print JSON"),
  ).action(
    action((paths: string[], o: AdminOptions & { class: string; policyVersion: PolicyVersion; json?: boolean }) => {
      const files = paths.flatMap((p) => (statSync(p, { throwIfNoEntry: false })?.isDirectory() ? readdirSync(p).filter((f) => f.endsWith(".json")).sort().map((f) => join(p, f)) : [p]));
      if (files.length === 0) throw new TpmTrustError("ERR_USAGE", `no identity files (*.json) in ${paths.join(", ")}`);
      return withAdmin(o, async (c) => {
        const added: { name: string; method: string }[] = [];
        const failed: { file: string; code: string; message: string }[] = [];
        await withProgress("registering hosts", files, (f) => basename(f), async (file) => {
          try {
            const r = await addHost(c, { name: basename(file, ".json"), hardwareClass: o.class, policyVersion: o.policyVersion, identity: readIdentity(file) });
            added.push({ name: r.name, method: r.ekTrust.method });
          } catch (e) {
            if (!isTpmTrustError(e) || e.code === "ERR_UNREACHABLE" || e.code === "ERR_UNAUTHENTICATED" || e.code === "ERR_FORBIDDEN") throw e;
            failed.push({ file, code: e.code, message: e.message });
          }
        });
        if (o.json) printJson({ added, failed });
        else {
          for (const a of added) process.stdout.write(`registered\t${a.name}\t${a.method}\n`);
          for (const f of failed) process.stdout.write(`failed\t${f.file}\t${f.code}\t${f.message}\n`);
          process.stdout.write(`${added.length} registered, ${failed.length} failed\n`);
        }
        return failed.length ? 1 : 0;
      });
    }),
  );
  adminOptions(hosts.command("list").description("registered hosts").option("--class <hwclass>", "only this hardware class").option("--json", "print JSON")).action(
    action((o: AdminOptions & { class?: string; json?: boolean }) =>
      withAdmin(
        o,
        async (c) => {
          const list = await c.list<HostView>(`/v1/hosts${o.class ? `?hardwareClass=${encodeURIComponent(o.class)}` : ""}`);
          if (o.json) return printJson(list);
          for (const h of list) process.stdout.write(`${h.name}\t${h.hardwareClass}\t${h.policyVersion}\t${h.trustMethod ?? "-"}\t${h.health}\t${h.aks.length} AK\n`);
        },
        { mustExist: true },
      ),
    ),
  );
  adminOptions(hosts.command("show <name>").description("one host: EKs, trust method, AKs, health").option("--json", "print JSON")).action(
    action((name: string, o: AdminOptions & { json?: boolean }) =>
      withAdmin(
        o,
        async (c) => {
          const h = await c.call<HostView>("GET", `/v1/hosts/${seg(name)}`);
          if (o.json) printJson(h);
          else process.stdout.write(describe(h));
        },
        { mustExist: true },
      ),
    ),
  );
  adminOptions(
    hosts
      .command("update <name>")
      .description("move a host to another hardware class without re-registering it: its EKs and bound AKs stay")
      .requiredOption("--class <hwclass>", "the new hardware class")
      .option("--json", "print JSON"),
  ).action(
    action((name: string, o: AdminOptions & { class: string; json?: boolean }) =>
      withAdmin(
        o,
        async (c) => {
          const h = await c.call<HostView>("PATCH", `/v1/hosts/${seg(name)}`, { hardwareClass: o.class });
          if (o.json) return printJson(h);
          process.stdout.write(`${h.name} is now in hardware class ${h.hardwareClass} (${h.aks.length} AK still bound)\n`);
        },
        { mustExist: true },
      ),
    ),
  );
  adminOptions(hosts.command("remove <name>").description("remove a host with its EKs, AKs and attestation history (asks first on a terminal)").option("--yes", "do not ask")).action(
    action((name: string, o: AdminOptions & { yes?: boolean }) =>
      withAdmin(o, async (c) => {
        // an unknown host is refused (and audited) by the removal itself
        const h = await c.call<HostView>("GET", `/v1/hosts/${seg(name)}`).catch(() => undefined);
        if (h && !(await confirmOnTerminal(`remove host ${h.name} (${h.hardwareClass}) with its ${h.eks.length} EK(s), ${h.aks.length} AK(s) and attestation history?`, o.yes))) {
          process.stderr.write("cancelled: nothing was removed\n");
          return 1;
        }
        await c.call("DELETE", `/v1/hosts/${seg(name)}`);
        process.stdout.write(`removed ${name}\n`);
      }),
    ),
  );
  for (const [verb, disabled] of [["disable", true], ["enable", false]] as const) {
    adminOptions(
      hosts
        .command(`${verb} <name>`)
        .description(disabled ? "disable a host: unhealthy at once (tokens revoked, webhooks told); no verdict, token, activation, certificate or key until enabled" : "enable a disabled host; it turns healthy at its next passing attestation"),
    ).action(action((name: string, o: AdminOptions) => withAdmin(o, async (c) => void (await c.call("POST", `/v1/hosts/${seg(name)}/${verb}`)))));
  }
}
