/**
 * Policies in the service's database: `tpmtrust policy add|list|show|remove` and
 * `policy secureboot create` (attached to the `policy` command of the file-based policy tools),
 * `tpmtrust ci add` (code-integrity policies by name and digest), `tpmtrust webhooks add|list|remove|deliveries`.
 */
import type { Command } from "commander";
import { Option } from "../commander.js";
import { addPolicy, checkNewPolicy, POLICY_KINDS, previewPolicy, removePolicy, type NewPolicy } from "../../attest/policies.js";
import { confirmOnTerminal } from "../ask.js";
import { addWebhook, removeWebhook, WEBHOOK_EVENTS, webhookView } from "../../attest/webhooks.js";
import { TpmTrustError } from "../../errors.js";
import { parsePcrList } from "../../policy/baseline.js";
import { CI_DEFAULT_PCRS, CI_MEASUREMENT, codeIntegrityPolicy, siPolicyFileDigest } from "../../policy/code-integrity.js";
import { secureBootPolicy } from "../../policy/secure-boot.js";
import type { Policy, PolicyVersion, Store } from "../../store/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

const ACTOR = "cli";
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

function summary(p: Policy): string {
  return `${p.id}\t${p.kind}\t${p.name}\tv${p.version}\t${p.hardwareClass ?? "(all classes)"}\t${p.policyVersion}\t${iso(p.createdAt)}${p.disabledAt !== null ? "\tdisabled" : ""}`;
}

const policyVersionOption = () =>
  new Option("--policy-version <v>", "policy version of the hosts it judges (a host attests only if all its policies share its version)").choices(["v2", "v1"]).default("v2");

interface StoreOptions {
  kind: string;
  name: string;
  class?: string;
  policyVersion: PolicyVersion;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
}

/**
 * Judges the hosts the policy applies to on their last evidence first: --dry-run prints that and
 * stops; otherwise a policy that would turn hosts unhealthy is stored only after a yes on a terminal
 * (or with --yes; without a terminal it is stored, the hosts named on standard error).
 */
async function store(store: Store, o: StoreOptions, document: unknown): Promise<number | void> {
  const np: NewPolicy = { kind: o.kind, name: o.name, hardwareClass: o.class ?? null, policyVersion: o.policyVersion, document };
  // a document that cannot be stored is refused (and, unless this is a dry run, audited) before any host is judged
  if (!o.dryRun) await checkNewPolicy(store, ACTOR, Date.now(), np);
  const preview = await previewPolicy(store, np);
  const unhealthy = preview.filter((h) => h.turnsUnhealthy);
  if (o.dryRun) {
    if (o.json) return printJson({ dryRun: true, hosts: preview, turnsUnhealthy: unhealthy.map((h) => h.host) });
    for (const h of preview) process.stdout.write(`${h.host}\t${h.hardwareClass}\t${h.health}\t${h.outcome}${h.turnsUnhealthy ? " (turns unhealthy)" : ""}\t${h.reason}\n`);
    process.stdout.write(`${unhealthy.length} of ${preview.length} host(s) would turn unhealthy; nothing was stored (--dry-run)\n`);
    return 0;
  }
  for (const h of unhealthy) process.stderr.write(`warning: ${h.host} would turn unhealthy: ${h.reason}\n`);
  if (unhealthy.length && !(await confirmOnTerminal(`${unhealthy.length} host(s) would turn unhealthy. Store ${o.kind} ${o.name} anyway?`, o.yes))) {
    process.stderr.write("cancelled: nothing was stored\n");
    return 1;
  }
  const p = await addPolicy(store, ACTOR, Date.now(), np);
  if (o.json) return printJson(p);
  process.stdout.write(`stored ${p.kind} ${p.name} version ${p.version} (${p.id}) for ${p.hardwareClass ?? "every hardware class"}, policy version ${p.policyVersion}\n`);
}

const dryRunOption = () => new Option("--dry-run", "judge the hosts it applies to on their last evidence and show which would turn unhealthy; store nothing");
const yesOption = () => new Option("--yes", "do not ask on a terminal when hosts would turn unhealthy");

export function register(program: Command): void {
  const policy = program.commands.find((c) => c.name() === "policy") ?? program.command("policy").description("policies");

  policy
    .command("add <file>")
    .description("store a policy document in the database as the next version of its kind and name")
    .addOption(new Option("--kind <kind>", "policy kind").choices(Object.keys(POLICY_KINDS)).makeOptionMandatory())
    .option("--name <name>", "policy name (default: the document's name)")
    .option("--class <hwclass>", "hardware class it applies to (default: every class)")
    .addOption(policyVersionOption())
    .addOption(dryRunOption())
    .addOption(yesOption())
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((file: string, o: { kind: string; name?: string; class?: string; policyVersion: PolicyVersion; dryRun?: boolean; yes?: boolean; db?: string; json?: boolean }) => {
        const document = readDocument(file);
        const name = o.name ?? (typeof document.name === "string" ? document.name : undefined);
        if (!name) throw new TpmTrustError("ERR_USAGE", "the document has no name: pass --name");
        return withStore(o.db, (s) => store(s, { ...o, name }, document));
      }),
    );

  policy
    .command("list")
    .description("policies in the database: the newest enabled version of each")
    .addOption(new Option("--kind <kind>", "only this kind").choices(Object.keys(POLICY_KINDS)))
    .option("--class <hwclass>", "only policies that apply to this hardware class")
    .option("--all", "every version, disabled ones too")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON (without documents)")
    .action(
      action((o: { kind?: string; class?: string; all?: boolean; db?: string; json?: boolean }) =>
        withStore(
          o.db,
          async (s) => {
            const list = await s.policies.list({ kind: o.kind, hardwareClass: o.class, allVersions: o.all, includeDisabled: o.all });
            if (o.json) return printJson(list.map(({ document: _d, ...p }) => p));
            for (const p of list) process.stdout.write(summary(p) + "\n");
          },
          { mustExist: true },
        ),
      ),
    );

  policy
    .command("show <id>")
    .description("one policy version with its document (JSON)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((id: string, o: { db?: string }) =>
        withStore(
          o.db,
          async (s) => {
            const p = await s.policies.getById(id);
            if (!p) throw new TpmTrustError("ERR_NOT_FOUND", `policy ${id} not found`);
            if (p.kind !== "ci") return printJson(p);
            const pcrs = (p.document as { pcrs?: number[] }).pcrs ?? CI_DEFAULT_PCRS;
            printJson({ ...p, measuredAs: `${CI_MEASUREMENT}, or an event with that digest, in PCR ${pcrs.join(", ")}` });
          },
          { mustExist: true },
        ),
      ),
    );

  policy
    .command("remove <id>")
    .description("disable the policy that this id is a version of (every version; kept for the record)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((id: string, o: { db?: string }) =>
        withStore(
          o.db,
          async (s) => {
            const p = await removePolicy(s, ACTOR, Date.now(), id);
            process.stdout.write(`disabled ${p.kind} ${p.name}\n`);
          },
          { mustExist: true },
        ),
      ),
    );

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

  program
    .command("ci")
    .description("code-integrity policies, registered by name and digest")
    .command("add")
    .description(`register a code-integrity policy: its digest must appear among the verified events of its PCRs, as Windows measures it: ${CI_MEASUREMENT}`)
    .requiredOption("--name <name>", "policy name")
    .option("--policy <file>", "the policy file as deployed (signed .p7b, or binary .bin/.cip): its digest is computed as Windows measures it")
    .option("--digest <hex>", "digest of the policy (SHA-1/256/384/512, hex), when you already have it")
    .option("--pcrs <list>", "PCRs its measurement is in", CI_DEFAULT_PCRS.join(","))
    .option("--class <hwclass>", "hardware class it applies to (default: every class)")
    .addOption(policyVersionOption())
    .addOption(dryRunOption())
    .addOption(yesOption())
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { name: string; policy?: string; digest?: string; pcrs: string; class?: string; policyVersion: PolicyVersion; dryRun?: boolean; yes?: boolean; db?: string; json?: boolean }) => {
        if ((o.policy === undefined) === (o.digest === undefined)) throw new TpmTrustError("ERR_USAGE", "give the policy file (--policy FILE.p7b|.bin) or its digest (--digest HEX), one of them");
        const digest = o.policy !== undefined ? siPolicyFileDigest(readInput(o.policy, "--policy"), o.policy) : o.digest!.replace(/^0x/i, "");
        const doc = codeIntegrityPolicy(o.name, digest, parsePcrList(o.pcrs));
        return withStore(o.db, (s) => store(s, { ...o, kind: "ci" }, doc));
      }),
    );

  const hooks = program.command("webhooks").description("subscribers notified (signed POST) on every host health change");
  hooks
    .command("add")
    .description("subscribe a URL; deliveries carry X-Tpmtrust-Signature: sha256=<hex HMAC-SHA256(secret, body)>")
    .requiredOption("--url <url>", "http:// or https:// URL")
    .requiredOption("--secret-file <file>", "file holding the HMAC secret (16–256 characters; - for standard input)")
    .addOption(new Option("--event <name>", "only this event (repeatable; default all)").choices([...WEBHOOK_EVENTS]).argParser((v: string, prev: string[] = []) => [...prev, v]))
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { url: string; secretFile: string; event?: string[]; db?: string; json?: boolean }) => {
        const secret = readInput(o.secretFile, "--secret-file").toString("utf8").trim();
        if (secret.length < 16 || secret.length > 256) throw new TpmTrustError("ERR_USAGE", "the webhook secret must have 16 to 256 characters");
        return withStore(o.db, async (s) => {
          const w = await addWebhook(s, ACTOR, Date.now(), { url: o.url, secret, events: o.event });
          if (o.json) return printJson(w);
          process.stdout.write(`${w.id}\t${w.url}\n`);
        });
      }),
    );
  hooks
    .command("list")
    .description("subscriptions (secrets are never shown)")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { db?: string; json?: boolean }) =>
        withStore(
          o.db,
          async (s) => {
            const list = (await s.webhooks.list({ includeDisabled: true })).map(webhookView);
            if (o.json) return printJson(list);
            for (const w of list) process.stdout.write(`${w.id}\t${w.url}\t${w.events.length ? w.events.join(",") : "all events"}\t${iso(w.createdAt)}\n`);
          },
          { mustExist: true },
        ),
      ),
    );
  hooks
    .command("remove <id>")
    .description("unsubscribe (pending deliveries are dropped)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(action((id: string, o: { db?: string }) => withStore(o.db, (s) => removeWebhook(s, ACTOR, Date.now(), id), { mustExist: true })));
  hooks
    .command("deliveries <id>")
    .description("delivery records of a subscription, newest first")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((id: string, o: { db?: string; json?: boolean }) =>
        withStore(
          o.db,
          async (s) => {
            const list = await s.webhooks.listDeliveries({ webhookId: id });
            if (o.json) return printJson(list);
            for (const d of list) {
              const state = d.deliveredAt !== null ? `delivered ${iso(d.deliveredAt)}` : d.nextAttemptAt !== null ? `retry at ${iso(d.nextAttemptAt)}` : "gave up";
              process.stdout.write(`${d.id}\t${d.event}\t${d.attempts} attempt(s)\t${state}${d.lastError ? `\t${d.lastError}` : ""}\n`);
            }
          },
          { mustExist: true },
        ),
      ),
    );
}
