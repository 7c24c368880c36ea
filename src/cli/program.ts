import { Command } from "commander";
import { register as verify } from "./commands/verify.js";
import { register as credential } from "./commands/credential.js";
import { register as audit } from "./commands/audit.js";
import { register as serve } from "./commands/serve.js";
import { register as admin } from "./commands/admin.js";
import { register as trust } from "./commands/trust.js";
import { register as hosts } from "./commands/hosts.js";
import { register as confirm } from "./commands/confirm.js";
import { register as agent } from "./commands/agent.js";
import { register as ca } from "./commands/ca.js";
import { register as agentCert } from "./commands/agent-cert.js";
import { register as eventlog } from "./commands/eventlog.js";
import { register as policy } from "./commands/policy.js";
import { register as policyStore } from "./commands/policy-store.js";
import { register as keys } from "./commands/keys.js";
import { register as agentKey } from "./commands/agent-key.js";

/**
 * The `tpmtrust` command tree. Each area registers its subcommands from its own module
 * (src/cli/commands/*.ts), so adding a command never touches another area's file.
 */
export function buildProgram(): Command {
  const program = new Command("tpmtrust")
    .description("TPM 2.0 attestation authority: EK trust, host attestation, key attestation CA, provisioning, key release")
    .version("0.1.0")
    .exitOverride()
    .showHelpAfterError();
  for (const register of registrations) register(program);
  return program;
}

type Register = (program: Command) => void;
const registrations: Register[] = [verify, credential, serve, admin, audit, agent, trust, hosts, confirm, eventlog, policy, policyStore, ca, agentCert, keys, agentKey];
