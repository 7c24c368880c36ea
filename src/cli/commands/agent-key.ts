/**
 * `tpmtrust agent key encrypt|decrypt|data-key|release`: a host uses a trusted key provider with
 * its attestation token (from `tpmtrust agent attest`, kept in the state directory). Registered
 * under the `agent` command that src/cli/commands/agent.ts creates (listed before this module).
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { type Command, Option } from "commander";
import { DEFAULT_STATE_DIR, readState, readToken, ServiceClient, withTpm } from "../../agent/index.js";
import { dataKey, decrypt, encrypt, release } from "../../agent/keys.js";
import { TpmTrustError } from "../../errors.js";
import { ENVELOPE_MAGIC } from "../../keys/envelope.js";
import { TPM_SPEC_HELP } from "../../tpm/transport/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";

interface Flags {
  provider: string;
  server?: string;
  caCert?: string;
  stateDir: string;
  tokenFile?: string;
  context?: string;
  json?: boolean;
}

function agentCommand(program: Command): Command {
  const agent = program.commands.find((c) => c.name() === "agent");
  if (!agent) throw new TpmTrustError("ERR_INTERNAL", "the agent command must be registered before agent key");
  return agent;
}

/** The service with the host's attestation token: --token-file, else the one `agent attest` saved. */
function service(o: Flags): ServiceClient {
  const token = o.tokenFile ? readInput(o.tokenFile, "--token-file").toString("utf8").trim() : readToken(o.stateDir);
  if (!token) throw new TpmTrustError("ERR_USAGE", `no attestation token in ${o.stateDir}: run \`tpmtrust agent attest\` first (or pass --token-file)`);
  const url = o.server ?? readState(o.stateDir).server;
  return new ServiceClient({ url, ca: o.caCert ? readInput(o.caCert, "--ca-cert") : undefined, token });
}

function readData(path: string, what: string): Buffer {
  if (path !== "-") return readInput(path, what);
  try {
    return readFileSync(0);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `${what}: cannot read standard input: ${(e as Error).message}`);
  }
}

/** An envelope as raw bytes or as base64 text (what `encrypt` prints). */
function readEnvelope(path: string, what: string): Buffer {
  const raw = readData(path, what);
  if (raw.subarray(0, 4).equals(ENVELOPE_MAGIC)) return raw;
  const text = raw.toString("latin1").trim();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return Buffer.from(text, "base64");
  throw new TpmTrustError("ERR_PARSE_FORMAT", `${what}: neither a ciphertext envelope nor its base64`);
}

/** Secrets go to files created 0600. */
function writeSecret(path: string, data: Buffer): void {
  try {
    writeFileSync(path, data, { mode: 0o600 });
    chmodSync(path, 0o600);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
}

function sizeArg(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,3}$/.test(v)) throw new TpmTrustError("ERR_USAGE", `--size must be a number of bytes, got "${v}"`);
  return Number(v);
}

const context = (o: Flags) => (o.context !== undefined ? { context: o.context } : {});

export function register(program: Command): void {
  const key = agentCommand(program).command("key").description("use a trusted key provider with this host's attestation token (exit 0 ok, 1 refused, 2 unusable input)");
  const common = (c: Command) =>
    c
      .requiredOption("--provider <name>", "the key provider")
      .option("--server <url>", "the tpmtrust service (default: the one the agent activated its AK with)")
      .option("--ca-cert <file>", "PEM CA certificate to trust for an https --server")
      .addOption(new Option("--state-dir <dir>", "the agent's state directory (registration and last token)").default(process.env.TPMTRUST_AGENT_STATE ?? DEFAULT_STATE_DIR))
      .option("--token-file <file>", "the attestation token to present (default: the state directory's)")
      .option("--context <text>", "encryption context bound to the ciphertext; decrypt needs the same")
      .option("--json", "print one JSON object");

  common(key.command("encrypt").description("encrypt with the provider's current key version; prints the envelope as base64 unless --out"))
    .option("--in <file>", "the plaintext (- for standard input)", "-")
    .option("--out <file>", "write the envelope (binary) here")
    .action(
      action(async (o: Flags & { in: string; out?: string }) => {
        const r = await encrypt(service(o), o.provider, readData(o.in, "--in"), context(o));
        if (o.out) writeFileSync(o.out, r.ciphertext);
        if (o.json) printJson({ keyVersion: r.keyVersion, ciphertext: r.ciphertext.toString("base64") });
        else if (!o.out) process.stdout.write(r.ciphertext.toString("base64") + "\n");
      }),
    );

  common(key.command("decrypt").description("decrypt an envelope (binary or base64); writes the plaintext to standard output unless --out"))
    .option("--in <file>", "the envelope (- for standard input)", "-")
    .option("--out <file>", "write the plaintext here (mode 0600)")
    .action(
      action(async (o: Flags & { in: string; out?: string }) => {
        const r = await decrypt(service(o), o.provider, readEnvelope(o.in, "--in"), context(o));
        if (o.out) writeSecret(o.out, r.plaintext);
        if (o.json) printJson({ keyVersion: r.keyVersion, plaintext: r.plaintext.toString("base64") });
        else if (!o.out) process.stdout.write(r.plaintext);
      }),
    );

  common(key.command("data-key").description("a new data key, in clear and wrapped by the provider (keep the wrapped one; decrypt opens it again)"))
    .option("--size <bytes>", "key size in bytes (16 to 64)", "32")
    .option("--out <file>", "write the data key here (mode 0600)")
    .option("--wrapped-out <file>", "write the wrapped key (envelope) here")
    .action(
      action(async (o: Flags & { size: string; out?: string; wrappedOut?: string }) => {
        const r = await dataKey(service(o), o.provider, { size: sizeArg(o.size), ...context(o) });
        if (o.out) writeSecret(o.out, r.plaintext);
        if (o.wrappedOut) writeFileSync(o.wrappedOut, r.wrappedKey);
        const out = { keyVersion: r.keyVersion, wrappedKey: r.wrappedKey.toString("base64"), ...(o.out ? {} : { plaintext: r.plaintext.toString("base64") }) };
        if (o.json) printJson(out);
        else process.stdout.write(Object.entries(out).map(([k, v]) => `${k} ${v}`).join("\n") + "\n");
      }),
    );

  common(key.command("release").description("have a key released to this TPM: the SRK is certified by the bound AK, the answer is imported and unsealed inside the TPM"))
    .addOption(new Option("--tpm <spec>", `the TPM: ${TPM_SPEC_HELP}`).default("/dev/tpmrm0"))
    .option("--wrapped-key <file>", "release this wrapped key (from data-key or an earlier release) instead of a new one")
    .option("--size <bytes>", "size of a new key in bytes (16 to 64; default 32)")
    .option("--out <file>", "write the released key here (mode 0600) instead of printing it")
    .option("--wrapped-out <file>", "write the wrapped form of a new key here")
    .action(
      action(async (o: Flags & { tpm: string; wrappedKey?: string; size?: string; out?: string; wrappedOut?: string }) => {
        if (o.wrappedKey && o.size !== undefined) throw new TpmTrustError("ERR_USAGE", "give --wrapped-key or --size, not both");
        const svc = service(o);
        const state = readState(o.stateDir);
        const wrappedKey = o.wrappedKey ? readEnvelope(o.wrappedKey, "--wrapped-key") : undefined;
        const r = await withTpm(o.tpm, (tpm) => release(tpm, svc, state, o.provider, { ...context(o), ...(wrappedKey ? { wrappedKey } : {}), ...(o.size !== undefined ? { size: sizeArg(o.size) } : {}) }));
        if (o.out) writeSecret(o.out, r.secret);
        if (o.wrappedOut) writeFileSync(o.wrappedOut, r.wrappedKey);
        const out = { keyVersion: r.keyVersion, wrappedKey: r.wrappedKey.toString("base64"), ...(o.out ? {} : { key: r.secret.toString("base64") }) };
        if (o.json) printJson(out);
        else process.stdout.write(Object.entries(out).map(([k, v]) => `${k} ${v}`).join("\n") + "\n");
      }),
    );
}
