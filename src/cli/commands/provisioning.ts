/**
 * Provisioning administration through /v1/provisioning (--server, else the local database):
 * enrollments, enrollment-groups, hubs, registrations, and the service's ID scope. Every change is
 * audited with the caller's principal (actor "cli" on the local database).
 */
import { type Command, Option } from "commander";
import { TpmTrustError } from "../../errors.js";
import type { AllocationSettings } from "../../provisioning/allocation.js";
import type { EnrollmentView } from "../../provisioning/enrollments.js";
import { REPROVISION_POLICIES } from "../../provisioning/settings.js";
import type { GroupView } from "../../provisioning/groups.js";

import { defaultRegistrationId } from "../../provisioning/registration-id.js";
import type { RegistrationView } from "../../provisioning/registrations.js";
import { decodePublicArea } from "../../provisioning/tpm-keys.js";
import type { Hub, ReprovisionPolicy } from "../../store/index.js";
import { readInput } from "../files.js";
import { printJson } from "../run.js";
import { adminCommand, seg, type AdminClient, type AdminOptions } from "../admin-client.js";

type Db = AdminOptions & { json?: boolean };

interface SettingOptions extends Db {
  deviceId?: string;
  twin?: string;
  allocation?: AllocationSettings["policy"];
  hub?: string[];
  webhookUrl?: string;
  webhookSecretFile?: string;
  webhookTimeout?: string;
  reprovision?: ReprovisionPolicy;
  disabled?: boolean;
  enabled?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** A binary file, or a text file holding base64 (the DPS portal's form of the EK). */
function binaryOrBase64(path: string, what: string): Buffer {
  const raw = readInput(path, what);
  const text = raw.toString("latin1").trim();
  return /^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0 && text.length >= 8 ? Buffer.from(text, "base64") : raw;
}

/** JSON from a file, or inline JSON when the value starts with "{". */
function jsonArg(v: string, what: string): unknown {
  const text = v.trimStart().startsWith("{") ? v : readInput(v, what).toString("utf8");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TpmTrustError("ERR_USAGE", `${what} is not JSON: ${(e as Error).message}`);
  }
}

/** The allocation settings the options describe, or undefined when none are given. */
function allocationOf(o: SettingOptions): AllocationSettings | undefined {
  const any = o.allocation !== undefined || o.hub !== undefined || o.webhookUrl !== undefined || o.webhookSecretFile !== undefined || o.webhookTimeout !== undefined;
  if (!any) return undefined;
  const policy = o.allocation ?? (o.webhookUrl ? "custom" : o.hub?.length === 1 ? "static" : "hashed");
  if (policy === "static") {
    if (o.hub?.length !== 1) throw new TpmTrustError("ERR_USAGE", "static allocation needs exactly one --hub");
    return { policy, hub: o.hub[0] };
  }
  if (policy === "hashed") return { policy, ...(o.hub ? { hubs: o.hub } : {}) };
  if (!o.webhookUrl || !o.webhookSecretFile) throw new TpmTrustError("ERR_USAGE", "custom allocation needs --webhook-url and --webhook-secret-file");
  const timeout = o.webhookTimeout !== undefined ? Number(o.webhookTimeout) : undefined;
  if (timeout !== undefined && !Number.isInteger(timeout)) throw new TpmTrustError("ERR_USAGE", "--webhook-timeout must be milliseconds");
  const secret = readInput(o.webhookSecretFile, "--webhook-secret-file").toString("utf8").trim();
  return { policy, webhook: { url: o.webhookUrl, secret, ...(timeout !== undefined ? { timeoutMs: timeout } : {}) }, ...(o.hub ? { hubs: o.hub } : {}) };
}

function settings(o: SettingOptions) {
  if (o.enabled && o.disabled) throw new TpmTrustError("ERR_USAGE", "--enabled and --disabled exclude each other");
  const allocation = allocationOf(o);
  return {
    ...(o.twin !== undefined ? { initialTwin: o.twin === "none" ? null : jsonArg(o.twin, "--twin") } : {}),
    ...(allocation ? { allocation } : {}),
    ...(o.reprovision ? { reprovisionPolicy: o.reprovision } : {}),
    ...(o.disabled ? { enabled: false } : o.enabled ? { enabled: true } : {}),
  };
}

function settingOptions(c: Command, update: boolean): Command {
  c.option("--twin <file|json>", `initial twin {tags, properties: {desired}} (a file or inline JSON${update ? "; none removes it" : ""})`)
    .addOption(new Option("--allocation <policy>", "hashed (evenly weighted), static or custom (webhook)").choices(["hashed", "static", "custom"]))
    .option("--hub <name>", "static: the hub; hashed/custom: a candidate hub (repeatable; default all hubs)", collect)
    .option("--webhook-url <url>", "custom allocation: the webhook")
    .option("--webhook-secret-file <file>", "custom allocation: file holding the HMAC secret (16+ characters)")
    .option("--webhook-timeout <ms>", "custom allocation: timeout per call (default 5000)")
    .addOption(new Option("--reprovision <policy>", "what a re-registering device gets").choices([...REPROVISION_POLICIES]))
    .option("--disabled", "the device may not register");
  if (update) c.option("--enabled", "the device may register again");
  return c;
}

const b64 = (b: Buffer) => b.toString("base64");
const line = (...cols: unknown[]) => process.stdout.write(cols.map((c) => (c === null || c === undefined ? "-" : String(c))).join("\t") + "\n");
/** `list`: every page of a list route, one line each. */
const listOf = <T>(parent: Command, description: string, path: (o: Db & Record<string, string | undefined>) => string, row: (v: T) => void, options?: (c: Command) => Command) =>
  adminCommand(parent, "list", description, { options, mustExist: true, run: (c: AdminClient, _a, o: Db & Record<string, string | undefined>) => c.list<T>(path(o)), print: (l) => l.forEach(row) });
/** `show <id>` / `remove <id>` of one item under `base`. */
const showOf = <T>(parent: Command, usage: string, description: string, base: string) =>
  adminCommand(parent, usage, description, { mustExist: true, run: (c, [id]) => c.call<T>("GET", `${base}/${seg(id)}`), print: (v) => printJson(v) });
const removeOf = (parent: Command, usage: string, description: string, base: string) =>
  adminCommand(parent, usage, description, { run: (c, [id]) => c.call<void>("DELETE", `${base}/${seg(id)}`).then(() => id), print: (id) => void process.stdout.write(`removed ${id}\n`) });

const ENROLLMENTS = "/v1/provisioning/enrollments";
const GROUPS = "/v1/provisioning/enrollment-groups";
const HUBS = "/v1/provisioning/hubs";
const REGISTRATIONS = "/v1/provisioning/registrations";

function registerEnrollments(program: Command): void {
  const e = program.command("enrollments").description("individual enrollments: which TPM (by EK) may register under which registration id");
  adminCommand(e, "add [registrationId]", "enroll a TPM by its EK (registration id default: the DPS default, base32 of SHA-256 of the EK's TPM2B_PUBLIC)", {
    options: (c) =>
      settingOptions(
        c.requiredOption("--ek <file>", "the EK's TPM2B_PUBLIC (tpm2_createek -u / tpm2_readpublic -o), binary or base64").option("--device-id <id>", "the hub device id (default: the registration id)"),
        false,
      ),
    run: (c, [id], o: SettingOptions & { ek: string }) => {
      const endorsementKey = binaryOrBase64(o.ek, "--ek");
      const registrationId = id ?? defaultRegistrationId(decodePublicArea(endorsementKey));
      return c.call<EnrollmentView>("POST", ENROLLMENTS, { registrationId, endorsementKey: b64(endorsementKey), ...(o.deviceId ? { deviceId: o.deviceId } : {}), ...settings(o) });
    },
    print: (v) => line("enrolled", v.registrationId, v.ekNameHex),
  });
  listOf<EnrollmentView>(e, "list enrollments", () => ENROLLMENTS, (v) => line(v.registrationId, v.enabled ? "enabled" : "disabled", v.allocation.policy, v.reprovisionPolicy, v.deviceId));
  showOf<EnrollmentView>(e, "show <registrationId>", "show one enrollment", ENROLLMENTS);
  adminCommand(e, "update <registrationId>", "change an enrollment (only what is given)", {
    options: (c) => settingOptions(c.option("--ek <file>", "a new EK (the device's TPM was replaced)").option("--device-id <id>", "the hub device id (none: the registration id)"), true),
    run: (c, [id], o: SettingOptions & { ek?: string }) => {
      const patch = {
        ...settings(o),
        ...(o.ek ? { endorsementKey: b64(binaryOrBase64(o.ek, "--ek")) } : {}),
        ...(o.deviceId !== undefined ? { deviceId: o.deviceId === "none" ? null : o.deviceId } : {}),
      };
      if (Object.keys(patch).length === 0) throw new TpmTrustError("ERR_USAGE", "nothing to change");
      return c.call<EnrollmentView>("PATCH", `${ENROLLMENTS}/${seg(id)}`, patch);
    },
    print: (v) => line("updated", v.registrationId),
  });
  removeOf(e, "remove <registrationId>", "remove an enrollment and its device registration record", ENROLLMENTS);
}

function registerGroups(program: Command): void {
  const g = program.command("enrollment-groups").description("enrollment groups: TPMs whose EK certificate chains to a manufacturer CA (beyond DPS)");
  adminCommand(g, "add <name>", "add a group; its devices register under their default registration id and send their EK certificate", {
    options: (c) =>
      settingOptions(
        c.requiredOption("--ca <file>", "manufacturer CA certificate(s), PEM or DER (repeatable)", collect).option("--intermediate <file>", "intermediate CA certificate(s) completing paths to the CAs (repeatable)", collect),
        false,
      ),
    run: (c, [name], o: SettingOptions & { ca: string[]; intermediate?: string[] }) =>
      c.call<GroupView>("POST", GROUPS, {
        name,
        caCertificates: o.ca.map((f) => b64(readInput(f, "--ca"))),
        intermediateCertificates: (o.intermediate ?? []).map((f) => b64(readInput(f, "--intermediate"))),
        ...settings(o),
      }),
    print: (v) => line("added", v.name, v.caCertificates.map((c) => c.subject).join("; ")),
  });
  listOf<GroupView>(g, "list enrollment groups", () => GROUPS, (v) => line(v.name, v.enabled ? "enabled" : "disabled", v.allocation.policy, v.reprovisionPolicy, v.caCertificates.map((c) => c.subject).join("; ")));
  showOf<GroupView>(g, "show <name>", "show one enrollment group", GROUPS);
  adminCommand(g, "update <name>", "change a group (only what is given)", {
    options: (c) => settingOptions(c.option("--ca <file>", "replace the CA certificates (repeatable)", collect).option("--intermediate <file>", "replace the intermediates (repeatable)", collect), true),
    run: (c, [name], o: SettingOptions & { ca?: string[]; intermediate?: string[] }) => {
      const patch = {
        ...settings(o),
        ...(o.ca ? { caCertificates: o.ca.map((f) => b64(readInput(f, "--ca"))) } : {}),
        ...(o.intermediate ? { intermediateCertificates: o.intermediate.map((f) => b64(readInput(f, "--intermediate"))) } : {}),
      };
      if (Object.keys(patch).length === 0) throw new TpmTrustError("ERR_USAGE", "nothing to change");
      return c.call<GroupView>("PATCH", `${GROUPS}/${seg(name)}`, patch);
    },
    print: (v) => line("updated", v.name),
  });
  removeOf(g, "remove <name>", "remove a group and its devices' registration records", GROUPS);
}

function registerHubs(program: Command): void {
  const h = program.command("hubs").description("linked hubs devices are assigned to");
  adminCommand(h, "add <name>", "add a hub, or change its hostname and weight", {
    options: (c) => c.requiredOption("--hostname <host>", "the hub's host name, e.g. contoso.azure-devices.net").option("--weight <n>", "share of hashed allocations, 0-1000 (default 1)"),
    prepare: (_a, o: Db & { hostname: string; weight?: string }) => {
      if (o.weight !== undefined && !/^\d{1,4}$/.test(o.weight)) throw new TpmTrustError("ERR_USAGE", "--weight must be an integer from 0 to 1000");
    },
    run: (c, [name], o) => c.call<Hub>("PUT", `${HUBS}/${seg(name)}`, { hostname: o.hostname, ...(o.weight !== undefined ? { weight: Number(o.weight) } : {}) }),
    print: (v) => line("hub", v.name, v.hostname, v.weight),
  });
  listOf<Hub>(h, "list hubs", () => HUBS, (v) => line(v.name, v.hostname, v.weight));
  removeOf(h, "remove <name>", "remove a hub (assigned devices are allocated anew when they next register)", HUBS);
}

function registerRegistrations(program: Command): void {
  const r = program.command("registrations").description("device registration records (what each device was assigned)");
  listOf<RegistrationView>(
    r,
    "list registration records",
    (o) => `${REGISTRATIONS}${o.group ? `?group=${encodeURIComponent(o.group)}` : ""}`,
    (v) => line(v.registrationId, v.status, v.substatus, v.assignedHub, v.deviceId, v.enrollment.kind === "group" ? `group:${v.enrollment.name}` : "individual"),
    (c) => c.option("--group <name>", "only devices of this enrollment group"),
  );
  showOf<RegistrationView>(r, "show <registrationId>", "show one registration record", REGISTRATIONS);
  removeOf(r, "remove <registrationId>", "delete a registration record (the device's next registration is an initial assignment)", REGISTRATIONS);
}

export function register(program: Command): void {
  registerEnrollments(program);
  registerGroups(program);
  registerHubs(program);
  registerRegistrations(program);
  const p = program.command("provisioning").description("the device registration API's settings");
  adminCommand(p, "scope", "print the ID scope devices register under, or set it (e.g. to the scope devices carry from Azure DPS)", {
    options: (c) => c.option("--set <scope>", "the new ID scope"),
    run: (c, _a, o: Db & { set?: string }) =>
      o.set ? c.call<{ idScope: string }>("PUT", "/v1/provisioning/settings", { idScope: o.set }) : c.call<{ idScope: string }>("GET", "/v1/provisioning/settings"),
    print: (v) => void process.stdout.write(`${v.idScope}\n`),
  });
}
