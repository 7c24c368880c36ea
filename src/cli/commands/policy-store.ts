/**
 * Policies in the service's database: `tpmtrust policy add|list|show|remove` and
 * `policy secureboot create` (attached to the `policy` command of the file-based policy tools),
 * `tpmtrust ci add` (code-integrity policies by name and digest), `tpmtrust webhooks add|list|remove|deliveries`.
 */
import { type Command, Option } from "commander";
import { POLICY_KINDS, type PolicyPreview } from "../../attest/policies.js";
import { confirmOnTerminal } from "../ask.js";
import { WEBHOOK_EVENTS, type WebhookView } from "../../attest/webhooks.js";
import { isTpmTrustError, TpmTrustError } from "../../errors.js";
import { parsePcrList } from "../../policy/baseline.js";
import { CI_DEFAULT_PCRS, CI_MEASUREMENT, codeIntegrityPolicy, siPolicyFileDigest } from "../../policy/code-integrity.js";
import { secureBootPolicy } from "../../policy/secure-boot.js";
import type { Delivery, Policy, PolicyVersion } from "../../store/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { adminCommand, seg, type AdminClient, type AdminOptions } from "../admin-client.js";

const iso = (t: number | null) => (t === null ? "-" : new Date(t).toISOString());

function readDocument(path: string): Record<string, unknown> {
  const text = readInput(path, "policy file").toString("utf8");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `${path} is not JSON: ${(e as Error).message}`, { path });
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new TpmTrustError("ERR_VALIDATION", `${path}: a policy document is a JSON object`, { path });
  return doc as Record<string, unknown>;
}

function summary(p: Omit<Policy, "document">): string {
  return `${p.id}\t${p.kind}\t${p.name}\tv${p.version}\t${p.hardwareClass ?? "(all classes)"}\t${p.policyVersion}\t${iso(p.createdAt)}${p.disabledAt !== null ? "\tdisabled" : ""}`;
}

const policyVersionOption = () =>
  new Option("--policy-version <v>", "policy version of the hosts it judges (a host attests only if all its policies share its version)").choices(["v2", "v1"]).default("v2");

interface StoreOptions extends AdminOptions {
  kind: string;
  name: string;
  class?: string;
  policyVersion: PolicyVersion;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
}

/** What store() did: the hosts of a dry run, a cancelled store, or the stored policy. */
type Stored = { dryRun: true; hosts: PolicyPreview[]; turnsUnhealthy: string[] } | { cancelled: true } | Policy;

/**
 * Judges the hosts the policy applies to on their last evidence first: --dry-run prints that and
 * stops; otherwise a policy that would turn hosts unhealthy is stored only after a yes on a terminal
 * (or with --yes; without a terminal it is stored, the hosts named on standard error).
 */
async function store(c: AdminClient, o: StoreOptions, document: unknown): Promise<Stored> {
  const np = { kind: o.kind, name: o.name, ...(o.class !== undefined ? { hardwareClass: o.class } : {}), policyVersion: o.policyVersion, document };
  const preview = await c.call<PolicyPreview[]>("POST", "/v1/policies/preview", np).catch(async (e: unknown) => {
    // a document that cannot be stored is refused by the store itself (and so audited), unless this is a dry run
    if (!o.dryRun && isTpmTrustError(e) && e.code !== "ERR_UNREACHABLE" && e.code !== "ERR_UNAUTHENTICATED" && e.code !== "ERR_FORBIDDEN") await c.call("POST", "/v1/policies", np);
    throw e;
  });
  const unhealthy = preview.filter((h) => h.turnsUnhealthy);
  if (o.dryRun) return { dryRun: true, hosts: preview, turnsUnhealthy: unhealthy.map((h) => h.host) };
  for (const h of unhealthy) process.stderr.write(`warning: ${h.host} would turn unhealthy: ${h.reason}\n`);
  if (unhealthy.length && !(await confirmOnTerminal(`${unhealthy.length} host(s) would turn unhealthy. Store ${o.kind} ${o.name} anyway?`, o.yes))) return { cancelled: true };
  return c.call<Policy>("POST", "/v1/policies", np);
}

function printStored(r: Stored): number {
  if ("cancelled" in r) {
    process.stderr.write("cancelled: nothing was stored\n");
    return 1;
  }
  if ("dryRun" in r) {
    for (const h of r.hosts) process.stdout.write(`${h.host}\t${h.hardwareClass}\t${h.health}\t${h.outcome}${h.turnsUnhealthy ? " (turns unhealthy)" : ""}\t${h.reason}\n`);
    process.stdout.write(`${r.turnsUnhealthy.length} of ${r.hosts.length} host(s) would turn unhealthy; nothing was stored (--dry-run)\n`);
    return 0;
  }
  process.stdout.write(`stored ${r.kind} ${r.name} version ${r.version} (${r.id}) for ${r.hardwareClass ?? "every hardware class"}, policy version ${r.policyVersion}\n`);
  return 0;
}

const dryRunOption = () => new Option("--dry-run", "judge the hosts it applies to on their last evidence and show which would turn unhealthy; store nothing");
const yesOption = () => new Option("--yes", "do not ask on a terminal when hosts would turn unhealthy");

const STORED = { print: printStored, exit: (r: Stored) => ("cancelled" in r ? 1 : 0) };

export function register(program: Command): void {
  const policy = program.commands.find((c) => c.name() === "policy") ?? program.command("policy").description("policies");

  adminCommand(policy, "add <file>", "store a policy document in the service's database as the next version of its kind and name", {
    options: (c) =>
      c
        .addOption(new Option("--kind <kind>", "policy kind").choices(Object.keys(POLICY_KINDS)).makeOptionMandatory())
        .option("--name <name>", "policy name (default: the document's name)")
        .option("--class <hwclass>", "hardware class it applies to (default: every class)")
        .addOption(policyVersionOption())
        .addOption(dryRunOption())
        .addOption(yesOption()),
    run: (c, [file], o: Omit<StoreOptions, "name"> & { name?: string }) => {
      const document = readDocument(file);
      const name = o.name ?? (typeof document.name === "string" ? document.name : undefined);
      if (!name) throw new TpmTrustError("ERR_USAGE", "the document has no name: pass --name");
      return store(c, { ...o, name }, document);
    },
    ...STORED,
  });

  adminCommand(policy, "list", "policies in the database: the newest enabled version of each", {
    options: (c) =>
      c
        .addOption(new Option("--kind <kind>", "only this kind").choices(Object.keys(POLICY_KINDS)))
        .option("--class <hwclass>", "only policies that apply to this hardware class")
        .option("--all", "every version, disabled ones too"),
    mustExist: true,
    run: (c, _a, o: AdminOptions & { kind?: string; class?: string; all?: boolean }) => {
      const q = new URLSearchParams({ ...(o.kind ? { kind: o.kind } : {}), ...(o.class ? { hardwareClass: o.class } : {}), ...(o.all ? { all: "true" } : {}) });
      return c.list<Omit<Policy, "document">>(`/v1/policies${q.size ? `?${q}` : ""}`);
    },
    print: (list) => list.forEach((p) => process.stdout.write(summary(p) + "\n")),
  });

  adminCommand(policy, "show <id>", "one policy version with its document (JSON)", {
    noJson: true,
    mustExist: true,
    run: (c, [id]) => c.call<Policy>("GET", `/v1/policies/${seg(id)}`),
    print: (p) => {
      if (p.kind !== "ci") return printJson(p);
      const pcrs = (p.document as { pcrs?: number[] }).pcrs ?? CI_DEFAULT_PCRS;
      printJson({ ...p, measuredAs: `${CI_MEASUREMENT}, or an event with that digest, in PCR ${pcrs.join(", ")}` });
    },
  });

  adminCommand(policy, "remove <id>", "disable the policy that this id is a version of (every version; kept for the record)", {
    noJson: true,
    mustExist: true,
    run: async (c, [id]) => {
      const p = await c.call<Policy>("GET", `/v1/policies/${seg(id)}`);
      await c.call("DELETE", `/v1/policies/${seg(id)}`);
      return p;
    },
    print: (p) => void process.stdout.write(`disabled ${p.kind} ${p.name}\n`),
  });

  policy
    .command("secureboot")
    .description("Secure Boot required: SecureBoot enabled, not in setup mode, optionally only listed authorities")
    .command("create")
    .description("write a Secure Boot policy document (store it with: tpmtrust policy add FILE --kind secureboot)")
    .requiredOption("--name <name>", "policy name")
    .option("--authority <sha256>", "SHA-256 of a certificate allowed to verify boot software (repeatable)", (v: string, prev: string[] = []) => [...prev, v.toLowerCase()])
    .action(
      action((o: { name: string; authority?: string[] }) => {
        printJson(secureBootPolicy(o.name, o.authority));
        return 0;
      }),
    );

  const ci = program.command("ci").description("code-integrity policies, registered by name and digest");
  adminCommand(ci, "add", `register a code-integrity policy: its digest must appear among the verified events of its PCRs, as Windows measures it: ${CI_MEASUREMENT}`, {
    options: (c) =>
      c
        .requiredOption("--name <name>", "policy name")
        .option("--policy <file>", "the policy file as deployed (signed .p7b, or binary .bin/.cip): its digest is computed as Windows measures it")
        .option("--digest <hex>", "digest of the policy (SHA-1/256/384/512, hex), when you already have it")
        .option("--pcrs <list>", "PCRs its measurement is in", CI_DEFAULT_PCRS.join(","))
        .option("--class <hwclass>", "hardware class it applies to (default: every class)")
        .addOption(policyVersionOption())
        .addOption(dryRunOption())
        .addOption(yesOption()),
    prepare: (_a, o: Omit<StoreOptions, "kind"> & { policy?: string; digest?: string; pcrs: string }) => {
      if ((o.policy === undefined) === (o.digest === undefined)) throw new TpmTrustError("ERR_USAGE", "give the policy file (--policy FILE.p7b|.bin) or its digest (--digest HEX), one of them");
    },
    run: (c, _a, o) => {
      const digest = o.policy !== undefined ? siPolicyFileDigest(readInput(o.policy, "--policy"), o.policy) : o.digest!.replace(/^0x/i, "");
      return store(c, { ...o, kind: "ci" }, codeIntegrityPolicy(o.name, digest, parsePcrList(o.pcrs)));
    },
    ...STORED,
  });

  const hooks = program.command("webhooks").description("subscribers notified (signed POST) on every host health change");
  adminCommand(hooks, "add", "subscribe a URL; deliveries carry X-Tpmtrust-Signature: sha256=<hex HMAC-SHA256(secret, body)>", {
    options: (c) =>
      c
        .requiredOption("--url <url>", "http:// or https:// URL")
        .requiredOption("--secret-file <file>", "file holding the HMAC secret (16–256 characters; - for standard input)")
        .addOption(new Option("--event <name>", "only this event (repeatable; default all)").choices([...WEBHOOK_EVENTS]).argParser((v: string, prev: string[] = []) => [...prev, v])),
    run: (c, _a, o: AdminOptions & { url: string; secretFile: string; event?: string[] }) => {
      const secret = readInput(o.secretFile, "--secret-file").toString("utf8").trim();
      if (secret.length < 16 || secret.length > 256) throw new TpmTrustError("ERR_USAGE", "the webhook secret must have 16 to 256 characters");
      return c.call<WebhookView>("POST", "/v1/webhooks", { url: o.url, secret, ...(o.event ? { events: o.event } : {}) });
    },
    print: (w) => void process.stdout.write(`${w.id}\t${w.url}\n`),
  });
  adminCommand(hooks, "list", "subscriptions (secrets are never shown)", {
    mustExist: true,
    run: (c) => c.list<WebhookView>("/v1/webhooks"),
    print: (list) => list.forEach((w) => process.stdout.write(`${w.id}\t${w.url}\t${w.events.length ? w.events.join(",") : "all events"}\t${iso(w.createdAt)}\n`)),
  });
  adminCommand(hooks, "remove <id>", "unsubscribe (pending deliveries are dropped)", { noJson: true, mustExist: true, run: (c, [id]) => c.call<void>("DELETE", `/v1/webhooks/${seg(id)}`), print: () => undefined });
  adminCommand(hooks, "deliveries <id>", "delivery records of a subscription, newest first", {
    mustExist: true,
    run: (c, [id]) => c.list<Delivery>(`/v1/webhooks/${seg(id)}/deliveries`),
    print: (list) =>
      list.forEach((d) => {
        const state = d.deliveredAt !== null ? `delivered ${iso(d.deliveredAt)}` : d.nextAttemptAt !== null ? `retry at ${iso(d.nextAttemptAt)}` : "gave up";
        process.stdout.write(`${d.id}\t${d.event}\t${d.attempts} attempt(s)\t${state}${d.lastError ? `\t${d.lastError}` : ""}\n`);
      }),
  });
}
