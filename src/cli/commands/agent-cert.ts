/**
 * `tpmtrust agent enroll-cert` (and `agent acme`): certificates for TPM-resident keys. Registered
 * under the `agent` command that src/cli/commands/agent.ts creates (listed before this module).
 */
import { type Command, Option } from "commander";
import pino from "pino";
import { DEFAULT_STATE_DIR, ServiceClient, withTpm } from "../../agent/index.js";
import { acmeEnroll } from "../../agent/acme.js";
import { enrollCert } from "../../agent/enroll-cert.js";
import { TpmTrustError } from "../../errors.js";
import { TPM_SPEC_HELP } from "../../tpm/transport/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";

interface ServerFlags {
  tpm: string;
  server: string;
  caCert?: string;
  stateDir: string;
  adminToken?: string;
  json?: boolean;
}

const log = () => pino({ name: "tpmtrust-agent", level: process.env.TPMTRUST_LOG_LEVEL ?? "info" }, pino.destination(2));

function service(o: ServerFlags): ServiceClient {
  const token = o.adminToken ? readInput(o.adminToken, "--admin-token").toString("utf8").trim() : undefined;
  return new ServiceClient({ url: o.server, ca: o.caCert ? readInput(o.caCert, "--ca-cert") : undefined, ...(token ? { token } : {}) });
}

function agentCommand(program: Command): Command {
  const agent = program.commands.find((c) => c.name() === "agent");
  if (!agent) throw new TpmTrustError("ERR_INTERNAL", "the agent command must be registered before agent-cert");
  return agent;
}

export function register(program: Command): void {
  agentCommand(program)
    .command("enroll-cert")
    .description("create a key in the TPM (under the SRK), prove it with the bound AK, and enroll a CSR signed by it")
    .requiredOption("--template <name>", "the CA's certificate template")
    .requiredOption("--subject <dn>", 'subject, e.g. "CN=host1.example, O=Example"')
    .option("--dns <names>", "DNS subjectAltNames, comma-separated")
    .option("--ecc", "ECC P-256 key (default)")
    .option("--rsa", "RSA-2048 key")
    .requiredOption("--server <url>", "the tpmtrust service")
    .addOption(new Option("--tpm <spec>", `the TPM: ${TPM_SPEC_HELP}`).default("/dev/tpmrm0"))
    .option("--ca-cert <file>", "PEM CA certificate to trust for an https --server")
    .option("--admin-token <file>", "file holding an admin API token: the administrator vouches for this TPM (trust model user-credentials)")
    .option("--state-dir <dir>", "the agent's state directory (from `agent activate`)", DEFAULT_STATE_DIR)
    .option("--json", "print JSON")
    .action(
      action(async (o: ServerFlags & { template: string; subject: string; dns?: string; ecc?: boolean; rsa?: boolean }) => {
        if (o.ecc && o.rsa) throw new TpmTrustError("ERR_USAGE", "give --ecc or --rsa, not both");
        const r = await withTpm(o.tpm, (tpm) =>
          enrollCert(tpm, service(o), {
            stateDir: o.stateDir,
            template: o.template,
            subject: o.subject,
            keyAlg: o.rsa ? "rsa" : "ecc",
            ...(o.dns ? { dns: o.dns.split(",").map((s) => s.trim()).filter(Boolean) } : {}),
            log: log(),
          }),
        );
        if (o.json) return printJson(r);
        process.stdout.write(`${r.serial}\t${r.subject}\t${r.policies.join(",") || "-"}\t${r.dir}\n`);
      }),
    );

  agentCommand(program)
    .command("acme")
    .description("get a certificate over ACME, answering device-attest-01 with this TPM (a new key under the SRK, certified by the bound AK)")
    .requiredOption("--directory <url>", "the ACME directory of a template: <server>/acme/<template>/directory")
    .option("--identifier <name>", "the permanent-identifier to order (default: the registered host name)")
    .option("--ecc", "ECC P-256 key (default)")
    .option("--rsa", "RSA-2048 key")
    .addOption(new Option("--tpm <spec>", `the TPM: ${TPM_SPEC_HELP}`).default("/dev/tpmrm0"))
    .option("--state-dir <dir>", "the agent's state directory (from `agent activate`)", DEFAULT_STATE_DIR)
    .option("--json", "print JSON")
    .action(
      action(async (o: { directory: string; identifier?: string; ecc?: boolean; rsa?: boolean; tpm: string; stateDir: string; json?: boolean }) => {
        if (o.ecc && o.rsa) throw new TpmTrustError("ERR_USAGE", "give --ecc or --rsa, not both");
        const r = await withTpm(o.tpm, (tpm) => acmeEnroll(tpm, { stateDir: o.stateDir, directory: o.directory, identifier: o.identifier, keyAlg: o.rsa ? "rsa" : "ecc", log: log() }));
        if (o.json) return printJson(r);
        process.stdout.write(`${r.serial}\t${r.identifier}\t${r.dir}\n`);
      }),
    );
}
