import { type Command, Option } from "commander";
import { TpmTrustError } from "../../errors.js";
import { resolveDbUrl } from "../../store/index.js";
import { startServer } from "../../server/serve.js";
import { readInput } from "../files.js";
import { ADMIT_MODES, SETTINGS, type AdmitMode } from "../../attest/settings.js";
import { defaultVerifyThreads } from "../../attest/quote-verifier.js";
import { action } from "../run.js";
import { localOnly } from "../admin-client.js";

function positive(v: string): number {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new TpmTrustError("ERR_USAGE", `expected a positive number, got "${v}"`);
  return n;
}
const seconds = positive;
function nonNegativeInt(v: string): number {
  if (!/^[0-9]{1,9}$/.test(v)) throw new TpmTrustError("ERR_USAGE", `expected a whole number, got "${v}"`);
  return Number(v);
}

/** each thread is a V8 isolate of its own (tens of MB): beyond the cores, more only cost memory */
const MAX_VERIFY_THREADS = 64;

export function register(program: Command): void {
  localOnly(program.command("serve").description("run the attestation service (HTTP API, dashboard at /ui)"), "runs the service itself")
    .option("--db <file|url>", "SQLite file or postgres:// URL (default $TPMTRUST_DB or .tpmtrust/tpmtrust.db)")
    .option("--listen <host:port>", "address to bind", "127.0.0.1:7443")
    .option("--tls-cert <file>", "TLS certificate chain (PEM)")
    .option("--tls-key <file>", "TLS private key (PEM)")
    .option("--admin-token-file <file>", "where the first start writes the initial admin token (mode 0600)")
    .option("--public-url <url>", "the URL clients reach this service at")
    .option("--provisioning-key-file <file>", "provisioning master key (64 hex digits, created 0600 if absent; every instance needs the same one; default $TPMTRUST_PROVISIONING_KEY_FILE, beside the SQLite file, or .tpmtrust/)")
    .option("--attest-interval <seconds>", "how often hosts attest: a host is silent (unhealthy) after interval × grace", seconds, 100)
    .option("--attest-grace <factor>", "deadline factor over the interval", positive, 3)
    .option("--sweep-interval <seconds>", "how often silent hosts and due webhook deliveries are looked for", seconds, 5)
    .option("--token-ttl <seconds>", "attestation token lifetime", seconds, 600)
    .option("--judgement-cache <entries>", "judgements of unchanged boots kept in memory (0: replay every log)", nonNegativeInt, 10_000)
    .option("--verify-threads <n>", "worker threads that verify quotes while the thread serving requests and the database is busy and a core is spare (0: that thread verifies all)", nonNegativeInt, defaultVerifyThreads())
    .option("--challenge-limit <n>", "attestation challenges per client address per minute, across instances (0: no limit)", nonNegativeInt, 600)
    .option("--audit-witness <seconds>", "how often the newest audit checkpoint is logged when it moved: keep it outside the database for audit verify --checkpoint", seconds, 600)
    .option("--audit-checkpoint <seconds>", "how often new audit entries are integrated into the Merkle tree and a checkpoint signed (0: never)", nonNegativeInt, 5)
    .option("--activation-limit <n>", "AK activations started per client address per minute, across instances (0: no limit)", nonNegativeInt, 60)
    .addOption(new Option("--admit <mode>", "how hosts are admitted (overrides tpmtrust config set admit): registered, or ek-cert-chain (a host whose EK certificate chains to a trusted TPM CA is registered into --default-class at its first AK activation)").choices([...ADMIT_MODES]))
    .option("--default-class <hwclass>", "the hardware class hosts admitted by --admit ek-cert-chain join")
    .action(
      action(async (o: {
        db?: string;
        listen: string;
        tlsCert?: string;
        tlsKey?: string;
        adminTokenFile?: string;
        publicUrl?: string;
        provisioningKeyFile?: string;
        attestInterval: number;
        attestGrace: number;
        sweepInterval: number;
        tokenTtl: number;
        judgementCache: number;
        verifyThreads: number;
        challengeLimit: number;
        activationLimit: number;
        auditWitness: number;
        auditCheckpoint: number;
        admit?: AdmitMode;
        defaultClass?: string;
      }) => {
        if (o.defaultClass !== undefined && o.admit === undefined) throw new TpmTrustError("ERR_USAGE", "--default-class goes with --admit");
        if (o.admit === "ek-cert-chain" && o.defaultClass === undefined) throw new TpmTrustError("ERR_USAGE", "--admit ek-cert-chain needs --default-class CLASS: the hardware class admitted hosts join");
        if (o.defaultClass !== undefined) SETTINGS["default-class"].parse(o.defaultClass);
        if (o.verifyThreads > MAX_VERIFY_THREADS) throw new TpmTrustError("ERR_USAGE", `--verify-threads is at most ${MAX_VERIFY_THREADS}`);
        if (!!o.tlsCert !== !!o.tlsKey) throw new TpmTrustError("ERR_USAGE", "--tls-cert and --tls-key go together");
        const tls = o.tlsCert && o.tlsKey ? { cert: readInput(o.tlsCert, "--tls-cert"), key: readInput(o.tlsKey, "--tls-key") } : undefined;
        const s = await startServer({
          db: resolveDbUrl(o.db),
          listen: o.listen,
          tls,
          adminTokenFile: o.adminTokenFile,
          publicUrl: o.publicUrl,
          provisioningKeyFile: o.provisioningKeyFile,
          auditWitnessMs: o.auditWitness * 1000,
          auditCheckpointMs: o.auditCheckpoint * 1000,
          attest: {
            intervalMs: o.attestInterval * 1000,
            grace: o.attestGrace,
            sweepMs: o.sweepInterval * 1000,
            tokenTtlMs: o.tokenTtl * 1000,
            judgementCacheSize: o.judgementCache,
            verifyThreads: o.verifyThreads,
            challengeLimit: o.challengeLimit,
            activationLimit: o.activationLimit,
            ...(o.admit ? { admission: { mode: o.admit, defaultClass: o.defaultClass ?? null } } : {}),
          },
        });
        s.app.log.info({ url: s.url, db: s.store.location }, "tpmtrust listening");
        if (s.adminTokenFile) process.stderr.write(`initial admin token written to ${s.adminTokenFile}\n`);
        process.stdout.write(`${s.url}\n`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off("SIGTERM", stop);
            process.off("SIGINT", stop);
            s.close().then(resolve, resolve);
          };
          process.on("SIGTERM", stop);
          process.on("SIGINT", stop);
        });
      }),
    );
}
