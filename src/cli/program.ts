import { Command } from "commander";
import { isVersionOnly, VERSION } from "./version.js";
import { exitCodeFor, printError } from "./run.js";

/**
 * The `tpmtrust` command tree. Each area registers its subcommands from its own module
 * (src/cli/commands/*.ts), so adding a command never touches another area's file: add the module to
 * MODULES and name the top-level commands it defines in COMMANDS.
 *
 * Modules load lazily: a run loads only the modules of its top-level command, so `tpmtrust verify`
 * does not pay for the HTTP server, the database drivers or the X.509 stack of other commands.
 */
type Register = (program: Command) => void;

const MODULES: Record<string, () => Promise<{ register: Register }>> = {
  verify: () => import("./commands/verify.js"),
  credential: () => import("./commands/credential.js"),
  serve: () => import("./commands/serve.js"),
  admin: () => import("./commands/admin.js"),
  audit: () => import("./commands/audit.js"),
  agent: () => import("./commands/agent.js"),
  agentCert: () => import("./commands/agent-cert.js"),
  agentKey: () => import("./commands/agent-key.js"),
  trust: () => import("./commands/trust.js"),
  hosts: () => import("./commands/hosts.js"),
  confirm: () => import("./commands/confirm.js"),
  eventlog: () => import("./commands/eventlog.js"),
  ima: () => import("./commands/ima.js"),
  policy: () => import("./commands/policy.js"),
  policyStore: () => import("./commands/policy-store.js"),
  ca: () => import("./commands/ca.js"),
  keys: () => import("./commands/keys.js"),
  provisioning: () => import("./commands/provisioning.js"),
  device: () => import("./commands/device.js"),
  completion: () => import("./commands/completion.js"),
  config: () => import("./commands/config.js"),
  status: () => import("./commands/status.js"),
};

/**
 * The modules of the one-shot offline commands, which operators script once per file (`verify`,
 * `tpm inspect`, `makecredential`, `eventlog`): the build also bundles them apart, as CommonJS run
 * with V8's code cache (src/cli/one-shot.ts). They never load @peculiar/x509; every other module gets
 * the reflect-metadata polyfill that @peculiar/x509 (through tsyringe) needs before it loads: loaded
 * here, once, by the CLI's entry point, and skipped by these, for which it is a third of the start-up.
 */
const ONE_SHOT = new Set<keyof typeof MODULES>(["verify", "credential", "eventlog"]);

/** Top-level command → the modules that define it or add subcommands to it, in registration order. */
const COMMANDS: Record<string, (keyof typeof MODULES)[]> = {
  verify: ["verify"],
  tpm: ["verify"],
  makecredential: ["credential"],
  serve: ["serve"],
  admin: ["admin"],
  audit: ["audit"],
  agent: ["agent", "agentCert", "agentKey"],
  trust: ["trust"],
  hosts: ["hosts"],
  confirm: ["confirm"],
  eventlog: ["eventlog"],
  ima: ["ima"],
  policy: ["policy", "policyStore"],
  ci: ["policyStore"],
  webhooks: ["policyStore"],
  ca: ["ca"],
  keys: ["keys"],
  enrollments: ["provisioning"],
  "enrollment-groups": ["provisioning"],
  hubs: ["provisioning"],
  registrations: ["provisioning"],
  provisioning: ["provisioning"],
  device: ["device"],
  config: ["config"],
  status: ["status"],
};

/** The modules the command tree for `argv` needs: none for --version, all for help, completion or an unknown command. */
function modulesFor(argv: readonly string[]): (keyof typeof MODULES)[] {
  const args = argv.slice(2);
  if (isVersionOnly(args)) return [];
  const first = args.find((a) => !a.startsWith("-"));
  return first !== undefined && COMMANDS[first] ? COMMANDS[first] : (Object.keys(MODULES) as (keyof typeof MODULES)[]);
}

/** Whether `argv` runs a command of the one-shot modules only (not --version, which loads none). */
export function isOneShot(argv: readonly string[]): boolean {
  const names = modulesFor(argv);
  return names.length > 0 && names.every((name) => ONE_SHOT.has(name));
}

/** Builds the command tree for `argv`. */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
  const program = new Command("tpmtrust")
    .description("TPM 2.0 attestation authority: EK trust, host attestation, key attestation CA, provisioning, key release")
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError();
  const names = modulesFor(argv);
  if (names.some((name) => !ONE_SHOT.has(name))) await import("reflect-metadata");
  for (const name of names) (await MODULES[name]()).register(program);
  return program;
}

/** Runs the command line `argv`: a failure is printed and sets the exit code. */
export async function runProgram(argv: readonly string[]): Promise<void> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    await printError(e);
    process.exitCode = exitCodeFor(e);
  }
}
