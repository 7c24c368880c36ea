/**
 * Key provider throughput over HTTP on loopback: encrypt and decrypt per second, each including
 * the attestation token check (ES256 signature, token record, host health, cluster, provider) and
 * its audit entry, against GET /healthz of the same server in the same run. The built-in local
 * store always; a SoftHSM2 token too when SoftHSM2 is installed; a KMIP server (PyKMIP) when
 * python3-pykmip is installed, measured also against the local store in the same run. Tokens come
 * from the token service (real signing), so no TPM is measured. 16 requests are in flight at a time.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compare, type BenchFigure } from "./lib.js";
import { attestConfig } from "../src/attest/config.js";
import { signToken } from "../src/tokens/tokens.js";
import { addKeyServer, closeKeyServers, createProvider, putCluster } from "../src/keys/index.js";
import { buildApp } from "../src/server/app.js";
import { openStore } from "../src/store/index.js";
import { PYKMIP_SERVER, startPyKmip, type PyKmip } from "../test/helpers/pykmip.js";
import { FLEET_CLASS, seedHosts, softHost } from "../test/helpers/software-fleet.js";

const IN_FLIGHT = 16;
const SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so";

function post(agent: Agent, port: number, method: string, path: string, token?: string, body?: unknown): Promise<Buffer> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, method, path, agent, headers: { ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${path}: HTTP ${res.statusCode} ${Buffer.concat(chunks)}`))));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** A batch of IN_FLIGHT concurrent calls; figures are scaled back to single operations. */
const batch = (fn: () => Promise<unknown>) => () => Promise.all(Array.from({ length: IN_FLIGHT }, fn));
const scale = (f: BenchFigure): BenchFigure => ({
  ...f,
  median: f.median * IN_FLIGHT,
  runs: f.runs.map((r) => r * IN_FLIGHT),
  ...(f.baseline ? { baseline: { ...f.baseline, median: f.baseline.median * IN_FLIGHT } } : {}),
});

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-bench-keys-"));
  // key-server files live in the key directory (src/keys/key-dir.ts): the KMS's folder holds its client files
  const kms: PyKmip | undefined = existsSync(PYKMIP_SERVER) ? await startPyKmip() : undefined;
  const keyDirBefore = process.env.TPMTRUST_KEY_DIR;
  process.env.TPMTRUST_KEY_DIR = kms?.dir ?? dir;
  const servers: { name: string; kind: string; config: Record<string, unknown> }[] = [{ name: "local", kind: "local", config: { masterKeyFile: join(process.env.TPMTRUST_KEY_DIR, "master.key") } }];
  if (existsSync(SOFTHSM)) {
    mkdirSync(join(dir, "tokens"));
    writeFileSync(join(dir, "softhsm2.conf"), `directories.tokendir = ${join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    process.env.SOFTHSM2_CONF = join(dir, "softhsm2.conf");
    execFileSync("softhsm2-util", ["--init-token", "--free", "--label", "bench", "--so-pin", "so-bench", "--pin", "1111"], { stdio: "pipe" });
    process.env.TPMTRUST_BENCH_PIN = "1111";
    servers.push({ name: "hsm", kind: "pkcs11", config: { module: SOFTHSM, tokenLabel: "bench", pinEnv: "TPMTRUST_BENCH_PIN" } });
  }
  if (kms) servers.push({ name: "kms", kind: "kmip", config: kms.settings() });
  const store = await openStore(join(dir, "bench.db"));
  const cfg = attestConfig();
  const app = await buildApp({ store, logger: false });
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as { port: number };
    const now = Date.now();
    const c = { actor: "bench", now };
    // key operations re-check the host's EK trust: an EK with a certificate from a trusted (test) root
    await seedHosts(store, [softHost("bench-host")]);
    await store.hosts.attested("bench-host", { health: "healthy", at: now, deadlineAt: now + 3_600_000 });
    const t = await signToken(store, cfg, now, { host: "bench-host", hardwareClass: FLEET_CLASS, policyVersion: "v2", policies: [], pcrDigestHex: "00".repeat(32) });
    await store.tokens.record({ jti: t.jti, hostName: "bench-host", kid: t.kid, issuedAt: t.issuedAt, expiresAt: t.expiresAt });
    for (const s of servers) {
      await addKeyServer(store, s, c);
      await createProvider(store, { name: `bench-${s.name}`, keyServer: s.name }, c);
    }
    await putCluster(store, { name: "bench", hosts: ["bench-host"], providers: servers.map((s) => `bench-${s.name}`) }, c);

    const healthz = batch(() => post(agent, port, "GET", "/healthz"));
    const plaintext = Buffer.alloc(32, 7).toString("base64");
    const figures: BenchFigure[] = [];
    for (const s of servers) {
      const provider = `bench-${s.name}`;
      const env = JSON.parse((await post(agent, port, "POST", `/v1/keys/${provider}/encrypt`, t.jwt, { plaintext })).toString()).ciphertext as string;
      const enc = batch(() => post(agent, port, "POST", `/v1/keys/${provider}/encrypt`, t.jwt, { plaintext }));
      const dec = batch(() => post(agent, port, "POST", `/v1/keys/${provider}/decrypt`, t.jwt, { ciphertext: env }));
      figures.push(scale(await compare(`encrypt 32 B over HTTP, token checked and audited (${s.kind})`, enc, "GET /healthz", healthz, { runs: 3, ms: 700 })));
      figures.push(scale(await compare(`decrypt 32 B over HTTP, token checked and audited (${s.kind})`, dec, "GET /healthz", healthz, { runs: 3, ms: 700 })));
    }
    if (kms) {
      // the cost of the KMS round trip: KMIP against the built-in store, same client and server
      const op = (provider: string, name: string, body: unknown) => batch(() => post(agent, port, "POST", `/v1/keys/${provider}/${name}`, t.jwt, body));
      const envOf = async (provider: string) => JSON.parse((await post(agent, port, "POST", `/v1/keys/${provider}/encrypt`, t.jwt, { plaintext })).toString()).ciphertext as string;
      const [kmsEnv, localEnv] = [await envOf("bench-kms"), await envOf("bench-local")];
      figures.push(scale(await compare("encrypt 32 B over HTTP through KMIP (PyKMIP, mutual TLS)", op("bench-kms", "encrypt", { plaintext }), "the same through the local store", op("bench-local", "encrypt", { plaintext }), { runs: 3, ms: 700 })));
      figures.push(scale(await compare("decrypt 32 B over HTTP through KMIP (PyKMIP, mutual TLS)", op("bench-kms", "decrypt", { ciphertext: kmsEnv }), "the same through the local store", op("bench-local", "decrypt", { ciphertext: localEnv }), { runs: 3, ms: 700 })));
    }
    return figures;
  } finally {
    agent.destroy();
    await app.close();
    await closeKeyServers(store);
    await store.close();
    await kms?.cleanup();
    rmSync(dir, { recursive: true, force: true });
    if (keyDirBefore === undefined) delete process.env.TPMTRUST_KEY_DIR;
    else process.env.TPMTRUST_KEY_DIR = keyDirBefore;
  }
}
