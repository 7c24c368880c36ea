/**
 * Provisioning administration on the database (like `tpmtrust admin`): enrollments,
 * enrollment-groups, hubs, registrations, and the service's ID scope. Every change is audited
 * with actor "cli".
 */
import type { Command } from "commander";
import { Option } from "../commander.js";
import { TpmTrustError } from "../../errors.js";
import type { AllocationSettings } from "../../provisioning/allocation.js";
import { addEnrollment, getEnrollment, listEnrollments, removeEnrollment, updateEnrollment, type EnrollmentPatch } from "../../provisioning/enrollments.js";
import { REPROVISION_POLICIES } from "../../provisioning/settings.js";
import { addGroup, getGroup, listGroups, removeGroup, updateGroup, type GroupPatch } from "../../provisioning/groups.js";
import { listHubs, putHub, removeHub } from "../../provisioning/hubs.js";
import { defaultRegistrationId } from "../../provisioning/registration-id.js";
import { getRegistration, listRegistrations, removeRegistration } from "../../provisioning/registrations.js";
import { ensureIdScope, setIdScope } from "../../provisioning/scope.js";
import { decodePublicArea } from "../../provisioning/tpm-keys.js";
import type { ReprovisionPolicy, Store } from "../../store/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

interface Db {
  db?: string;
  json?: boolean;
}

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

const by = () => ({ actor: "cli", now: Date.now() });
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
  return c.option("--db <url>", DB_OPTION_HELP).option("--json", "print JSON");
}

const db = (c: Command) => c.option("--db <url>", DB_OPTION_HELP).option("--json", "print JSON");
const run = <T>(o: Db, fn: (s: Store) => Promise<T>, print: (v: T) => void) =>
  withStore(o.db, async (s) => {
    const v = await fn(s);
    if (o.json) printJson(v);
    else print(v);
  });
const line = (...cols: unknown[]) => process.stdout.write(cols.map((c) => (c === null || c === undefined ? "-" : String(c))).join("\t") + "\n");
const done = (what: string) => () => process.stdout.write(`${what}\n`);

function registerEnrollments(program: Command): void {
  const e = program.command("enrollments").description("individual enrollments: which TPM (by EK) may register under which registration id");
  settingOptions(
    e
      .command("add [registrationId]")
      .description("enroll a TPM by its EK (registration id default: the DPS default, base32 of SHA-256 of the EK's TPM2B_PUBLIC)")
      .requiredOption("--ek <file>", "the EK's TPM2B_PUBLIC (tpm2_createek -u / tpm2_readpublic -o), binary or base64")
      .option("--device-id <id>", "the hub device id (default: the registration id)"),
    false,
  ).action(
    action((id: string | undefined, o: SettingOptions & { ek: string }) => {
      const endorsementKey = binaryOrBase64(o.ek, "--ek");
      const registrationId = id ?? defaultRegistrationId(decodePublicArea(endorsementKey));
      return run(o, (s) => addEnrollment(s, { registrationId, endorsementKey, ...(o.deviceId ? { deviceId: o.deviceId } : {}), ...settings(o) }, by()), (v) => line("enrolled", v.registrationId, v.ekNameHex));
    }),
  );
  db(e.command("list").description("list enrollments")).action(
    action((o: Db) => run(o, listEnrollments, (l) => l.forEach((v) => line(v.registrationId, v.enabled ? "enabled" : "disabled", v.allocation.policy, v.reprovisionPolicy, v.deviceId)))),
  );
  db(e.command("show <registrationId>").description("show one enrollment")).action(action((id: string, o: Db) => run(o, (s) => getEnrollment(s, id), (v) => printJson(v))));
  settingOptions(
    e
      .command("update <registrationId>")
      .description("change an enrollment (only what is given)")
      .option("--ek <file>", "a new EK (the device's TPM was replaced)")
      .option("--device-id <id>", "the hub device id (none: the registration id)"),
    true,
  ).action(
    action((id: string, o: SettingOptions & { ek?: string }) => {
      const patch: EnrollmentPatch = {
        ...settings(o),
        ...(o.ek ? { endorsementKey: binaryOrBase64(o.ek, "--ek") } : {}),
        ...(o.deviceId !== undefined ? { deviceId: o.deviceId === "none" ? null : o.deviceId } : {}),
      };
      if (Object.keys(patch).length === 0) throw new TpmTrustError("ERR_USAGE", "nothing to change");
      return run(o, (s) => updateEnrollment(s, id, patch, by()), (v) => line("updated", v.registrationId));
    }),
  );
  db(e.command("remove <registrationId>").description("remove an enrollment and its device registration record")).action(
    action((id: string, o: Db) => run(o, (s) => removeEnrollment(s, id, by()), done(`removed ${id}`))),
  );
}

function registerGroups(program: Command): void {
  const g = program.command("enrollment-groups").description("enrollment groups: TPMs whose EK certificate chains to a manufacturer CA (beyond DPS)");
  settingOptions(
    g
      .command("add <name>")
      .description("add a group; its devices register under their default registration id and send their EK certificate")
      .requiredOption("--ca <file>", "manufacturer CA certificate(s), PEM or DER (repeatable)", collect)
      .option("--intermediate <file>", "intermediate CA certificate(s) completing paths to the CAs (repeatable)", collect),
    false,
  ).action(
    action((name: string, o: SettingOptions & { ca: string[]; intermediate?: string[] }) =>
      run(
        o,
        (s) =>
          addGroup(s, { name, caCertificates: o.ca.map((f) => readInput(f, "--ca")), intermediateCertificates: (o.intermediate ?? []).map((f) => readInput(f, "--intermediate")), ...settings(o) }, by()),
        (v) => line("added", v.name, v.caCertificates.map((c) => c.subject).join("; ")),
      ),
    ),
  );
  db(g.command("list").description("list enrollment groups")).action(
    action((o: Db) => run(o, listGroups, (l) => l.forEach((v) => line(v.name, v.enabled ? "enabled" : "disabled", v.allocation.policy, v.reprovisionPolicy, v.caCertificates.map((c) => c.subject).join("; "))))),
  );
  db(g.command("show <name>").description("show one enrollment group")).action(action((name: string, o: Db) => run(o, (s) => getGroup(s, name), (v) => printJson(v))));
  settingOptions(
    g
      .command("update <name>")
      .description("change a group (only what is given)")
      .option("--ca <file>", "replace the CA certificates (repeatable)", collect)
      .option("--intermediate <file>", "replace the intermediates (repeatable)", collect),
    true,
  ).action(
    action((name: string, o: SettingOptions & { ca?: string[]; intermediate?: string[] }) => {
      const patch: GroupPatch = {
        ...settings(o),
        ...(o.ca ? { caCertificates: o.ca.map((f) => readInput(f, "--ca")) } : {}),
        ...(o.intermediate ? { intermediateCertificates: o.intermediate.map((f) => readInput(f, "--intermediate")) } : {}),
      };
      if (Object.keys(patch).length === 0) throw new TpmTrustError("ERR_USAGE", "nothing to change");
      return run(o, (s) => updateGroup(s, name, patch, by()), (v) => line("updated", v.name));
    }),
  );
  db(g.command("remove <name>").description("remove a group and its devices' registration records")).action(action((name: string, o: Db) => run(o, (s) => removeGroup(s, name, by()), done(`removed ${name}`))));
}

function registerHubs(program: Command): void {
  const h = program.command("hubs").description("linked hubs devices are assigned to");
  db(
    h
      .command("add <name>")
      .description("add a hub, or change its hostname and weight")
      .requiredOption("--hostname <host>", "the hub's host name, e.g. contoso.azure-devices.net")
      .option("--weight <n>", "share of hashed allocations, 0-1000 (default 1)"),
  ).action(
    action((name: string, o: Db & { hostname: string; weight?: string }) => {
      if (o.weight !== undefined && !/^\d{1,4}$/.test(o.weight)) throw new TpmTrustError("ERR_USAGE", "--weight must be an integer from 0 to 1000");
      return run(o, (s) => putHub(s, { name, hostname: o.hostname, ...(o.weight !== undefined ? { weight: Number(o.weight) } : {}) }, by()), (v) => line("hub", v.name, v.hostname, v.weight));
    }),
  );
  db(h.command("list").description("list hubs")).action(action((o: Db) => run(o, listHubs, (l) => l.forEach((v) => line(v.name, v.hostname, v.weight)))));
  db(h.command("remove <name>").description("remove a hub (assigned devices are allocated anew when they next register)")).action(
    action((name: string, o: Db) => run(o, (s) => removeHub(s, name, by()), done(`removed ${name}`))),
  );
}

function registerRegistrations(program: Command): void {
  const r = program.command("registrations").description("device registration records (what each device was assigned)");
  db(r.command("list").description("list registration records").option("--group <name>", "only devices of this enrollment group")).action(
    action((o: Db & { group?: string }) =>
      run(o, (s) => listRegistrations(s, o.group ? { group: o.group } : {}), (l) => l.forEach((v) => line(v.registrationId, v.status, v.substatus, v.assignedHub, v.deviceId, v.enrollment.kind === "group" ? `group:${v.enrollment.name}` : "individual"))),
    ),
  );
  db(r.command("show <registrationId>").description("show one registration record")).action(action((id: string, o: Db) => run(o, (s) => getRegistration(s, id), (v) => printJson(v))));
  db(r.command("remove <registrationId>").description("delete a registration record (the device's next registration is an initial assignment)")).action(
    action((id: string, o: Db) => run(o, (s) => removeRegistration(s, id, by()), done(`removed ${id}`))),
  );
}

export function register(program: Command): void {
  registerEnrollments(program);
  registerGroups(program);
  registerHubs(program);
  registerRegistrations(program);
  db(
    program
      .command("provisioning")
      .description("the device registration API's settings")
      .command("scope")
      .description("print the ID scope devices register under, or set it (e.g. to the scope devices carry from Azure DPS)")
      .option("--set <scope>", "the new ID scope"),
  ).action(
    action((o: Db & { set?: string }) =>
      run(o, async (s) => ({ idScope: o.set ? await setIdScope(s, o.set, by()) : await ensureIdScope(s, Date.now()) }), (v) => process.stdout.write(`${v.idScope}\n`)),
    ),
  );
}
