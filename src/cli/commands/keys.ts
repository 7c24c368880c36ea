/**
 * `tpmtrust keys servers|providers|clusters …`: key release administration through /v1/keys/… —
 * on the running service with --server, else in-process on the local database (src/cli/admin-client.ts).
 */
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { TpmTrustError } from "../../errors.js";
import { DEFAULT_KEY_SERVER, KEY_SERVER_KINDS, MASTER_KEY_ENV, type ProviderView } from "../../keys/index.js";
import type { Cluster, KeyServer } from "../../store/index.js";
import { adminCommand, seg, type AdminOptions } from "../admin-client.js";

interface Common extends AdminOptions {
  json?: boolean;
}

const date = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString());
/** Values of a repeatable, comma-separated option. */
const list = (v: string, prev: string[] = []) => [...prev, ...v.split(",").map((s) => s.trim()).filter(Boolean)];

function printProvider(p: ProviderView): void {
  const versions = p.versions.map((v) => `  v${v.version} created ${date(v.createdAt)}${v.retiredAt ? ` retired ${date(v.retiredAt)}` : v.version === p.currentVersion ? " (current)" : ""}`);
  process.stdout.write(
    [
      `name: ${p.name}`,
      `key server: ${p.keyServer} (${p.kind})`,
      `primary key id: ${p.primaryKeyId}`,
      `state: ${p.disabledAt ? `disabled since ${date(p.disabledAt)}` : "enabled"}`,
      `clusters: ${p.clusters.join(", ") || "none"}`,
      "versions:",
      ...versions,
    ].join("\n") + "\n",
  );
}

function printCluster(c: Cluster): void {
  const s = c.selector;
  process.stdout.write(
    [`name: ${c.name}`, `hosts: ${s.hosts?.join(", ") ?? "-"}`, `hardware classes: ${s.hardwareClasses?.join(", ") ?? "-"}`, `tags: ${s.tags?.join(", ") ?? "-"}`, `providers: ${c.providers.join(", ") || "none"}`].join(
      "\n",
    ) + "\n",
  );
}

/** Which options belong to which key server kind, and the setting each one fills. */
const KIND_OPTIONS: Record<string, Record<string, string>> = {
  local: { masterKeyFile: "--master-key-file", masterKeyEnv: "--master-key-env" },
  pkcs11: { module: "--module", tokenLabel: "--token-label", slot: "--slot", pinEnv: "--pin-env", pinFile: "--pin-file" },
  kmip: { host: "--host", port: "--port", ca: "--ca", cert: "--cert", key: "--key" },
};
/** Options that name files: relative paths are taken from the current directory. */
const PATH_OPTIONS = new Set(["masterKeyFile", "pinFile", "ca", "cert", "key"]);

/** The kind's settings from the options; file paths are made absolute from the current folder for the local database only (a service reads its own). */
function serverConfig(o: { kind: string } & Record<string, unknown>, local: boolean): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [kind, options] of Object.entries(KIND_OPTIONS)) {
    for (const [setting, flag] of Object.entries(options)) {
      const v = o[setting];
      if (v === undefined) continue;
      if (kind !== o.kind) throw new TpmTrustError("ERR_USAGE", `${flag} is for --kind ${kind}`);
      config[setting] = PATH_OPTIONS.has(setting) && local ? resolve(String(v)) : v;
    }
  }
  if (config.slot !== undefined && !/^\d{1,4}$/.test(String(config.slot))) throw new TpmTrustError("ERR_USAGE", `--slot must be a slot index, got "${config.slot}"`);
  if (config.slot !== undefined) config.slot = Number(config.slot);
  return config;
}

const rows = <T>(row: (v: T) => string) => (vs: T[]) => process.stdout.write(vs.map((v) => row(v) + "\n").join(""));

export function register(program: Command): void {
  const keys = program.command("keys").description("key release: key servers, trusted key providers and trusted clusters (admin; on the running service with --server, else on the local database)");

  // ---- key servers
  const servers = keys.command("servers").description("where primary keys live: the built-in local store, a PKCS#11 token or a KMIP server");
  adminCommand(servers, "add <name>", "add a key server; it is opened and checked first (master key readable, token logs in)", {
    run: (c, [name], o: Common & { kind: string } & Record<string, unknown>) => c.call<KeyServer>("POST", "/v1/keys/servers", { name, kind: o.kind, config: serverConfig(o, c.local) }),
    print: (s) => process.stdout.write(`added key server ${s.name} (${s.kind}) ${JSON.stringify(s.config)}\n`),
    options: (c) =>
      c
        .addOption(new Option("--kind <kind>", Object.entries(KEY_SERVER_KINDS).map(([k, v]) => `${k}: ${v.description}`).join("; ")).choices(Object.keys(KEY_SERVER_KINDS)).makeOptionMandatory())
        .option("--master-key-file <path>", "local: the master key file (mode 0600; created on first use)")
        .option("--master-key-env <var>", `local: the variable holding the base64 master key (e.g. ${MASTER_KEY_ENV})`)
        .option("--module <path>", "pkcs11: the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so")
        .option("--token-label <label>", "pkcs11: the token's label")
        .option("--slot <index>", "pkcs11: the token's slot index (instead of --token-label)")
        .option("--pin-env <var>", "pkcs11: the variable holding the user PIN")
        .option("--pin-file <path>", "pkcs11: the file holding the user PIN (mode 0600)")
        .option("--host <host>", "kmip: the KMS's host name or address")
        .option("--port <port>", "kmip: the KMS's port (KMIP's is 5696)")
        .option("--ca <file>", "kmip: PEM of the CA that issued the KMS's certificate")
        .option("--cert <file>", "kmip: PEM of this client's certificate")
        .option("--key <file>", "kmip: PEM of this client's private key (mode 0600)"),
  });
  adminCommand(servers, "list", "key servers and their settings (which name where secrets are, never the secrets)", {
    run: (c) => c.list<KeyServer>("/v1/keys/servers"),
    print: rows<KeyServer>((s) => `${s.name}\t${s.kind}\t${JSON.stringify(s.config)}`),
  });

  // ---- providers
  const providers = keys.command("providers").description("trusted key providers: a name, a key server, a primary key id and versioned keys");
  adminCommand(providers, "add <name>", `create a provider with key version 1 (on the key server "${DEFAULT_KEY_SERVER}" unless --key-server; "${DEFAULT_KEY_SERVER}" is created as the built-in store on first use)`, {
    run: (c, [name], o: Common & { keyServer: string; keyId?: string }) => c.call<ProviderView>("POST", "/v1/keys/providers", { name, keyServer: o.keyServer, ...(o.keyId ? { primaryKeyId: o.keyId } : {}) }),
    print: (p) => process.stdout.write(`created key provider ${p.name} on ${p.keyServer} (${p.kind}), key version 1\n`),
    options: (c) => c.option("--key-server <name>", "the key server", DEFAULT_KEY_SERVER).option("--key-id <id>", "the primary key id in the key server (default tpmtrust-<name>); a key it already holds under that id (PKCS#11 label or CKA_ID, KMIP Unique Identifier or Name) is adopted"),
  });
  adminCommand(providers, "list", "key providers", {
    run: (c) => c.list<ProviderView>("/v1/keys/providers"),
    print: rows<ProviderView>((p) => `${p.name}\t${p.keyServer}\tv${p.currentVersion}\t${p.disabledAt ? "disabled" : "enabled"}\t${p.clusters.join(",") || "-"}`),
  });
  adminCommand(providers, "show <name>", "one provider: key server, versions, clusters", {
    run: (c, [name]) => c.call<ProviderView>("GET", `/v1/keys/providers/${seg(name)}`),
    print: printProvider,
  });
  adminCommand(providers, "disable <name>", "refuse every host operation with this provider (ERR_DISABLED)", {
    run: (c, [name]) => c.call<ProviderView>("POST", `/v1/keys/providers/${seg(name)}/disable`),
    print: printProvider,
  });
  adminCommand(providers, "enable <name>", "enable a disabled provider", {
    run: (c, [name]) => c.call<ProviderView>("POST", `/v1/keys/providers/${seg(name)}/enable`),
    print: printProvider,
  });
  adminCommand(providers, "rotate <name>", "make a new key version current; older versions still decrypt until retired", {
    run: (c, [name]) => c.call<ProviderView>("POST", `/v1/keys/providers/${seg(name)}/rotate`),
    print: printProvider,
  });
  adminCommand(providers, "retire-version <name> <version>", "retire an old key version: what it sealed no longer decrypts (ERR_KEY_RETIRED); the current version cannot be retired", {
    run: (c, [name, version]) => {
      if (!/^[1-9]\d{0,8}$/.test(version)) throw new TpmTrustError("ERR_USAGE", `version must be a number like 1, got "${version}"`);
      return c.call<ProviderView>("POST", `/v1/keys/providers/${seg(name)}/versions/${version}/retire`);
    },
    print: printProvider,
  });

  // ---- clusters
  const clusters = keys.command("clusters").description("trusted clusters: hosts (by name, hardware class or tag) and the providers they may use");
  adminCommand(clusters, "add <name>", "create or replace a cluster", {
    run: (c, [name], o: Common & { providers: string[]; hosts?: string[]; classes?: string[]; tags?: string[] }) =>
      c.call<Cluster>("PUT", `/v1/keys/clusters/${seg(name)}`, { providers: o.providers, hosts: o.hosts, hardwareClasses: o.classes, tags: o.tags }),
    print: printCluster,
    options: (c) =>
      c
        .requiredOption("--providers <names>", "key providers its hosts may use (comma-separated, repeatable)", list)
        .option("--hosts <names>", "host names (comma-separated, repeatable)", list)
        .option("--classes <classes>", "hardware classes (comma-separated, repeatable)", list)
        .option("--tags <tags>", "host tags (comma-separated, repeatable)", list),
  });
  adminCommand(clusters, "list", "trusted clusters", {
    run: (c) => c.list<Cluster>("/v1/keys/clusters"),
    print: rows<Cluster>((c) => `${c.name}\t${JSON.stringify(c.selector)}\t${c.providers.join(",") || "-"}`),
  });
  adminCommand(clusters, "show <name>", "one cluster", {
    run: (c, [name]) => c.call<Cluster>("GET", `/v1/keys/clusters/${seg(name)}`),
    print: printCluster,
  });
  adminCommand(clusters, "remove <name>", "remove a cluster: its hosts lose the providers it allowed", {
    run: (c, [name]) => c.call<void>("DELETE", `/v1/keys/clusters/${seg(name)}`),
    print: () => undefined,
  });
}
