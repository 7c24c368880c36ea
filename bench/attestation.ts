/**
 * Host attestations per second end to end over HTTP on loopback: `tpmtrust serve` in a child
 * process (SQLite file, then PostgreSQL), a keep-alive client with 16 requests in flight. The
 * evidence is pre-generated in software with the exact TPM formats (64 hosts with ECC P-256 AKs bound
 * through the store, quotes over nonces issued through the store beforehand, the RHEL 8 event log of
 * the test fixtures judged against the baseline learned from it), so the TPM is not what is
 * measured. Each figure is compared with raw GET /healthz over the same client and server.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, createSign, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { httpCall, median, type BenchFigure } from "./lib.js";
import { AK_ATTRS, tpmtFromKey } from "./quote.js";
import { NONCE_PURPOSE } from "../src/attest/challenge.js";
import { addPolicy } from "../src/attest/policies.js";
import { learnBaseline } from "../src/policy/baseline.js";
import { openStore } from "../src/store/index.js";
import { hashAlgByName, TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "../src/tpm/constants.js";
import { decodeTpmtPublic, encodeTpmsAttest, encodeTpmtPublic, encodeTpmtSignature, objectName, pcrSelection } from "../src/tpm/structures.js";
import { parseEventLog, replayEventLog } from "../src/verify/eventlog/index.js";
import { startPostgres } from "../test/helpers/postgres.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LOG = readFileSync(join(ROOT, "test/fixtures/eventlogs/rhel8-gce-uefi.bin"));
const PCRS = [0, 1, 2, 3, 4, 5, 6, 7];
const CONCURRENCY = 16;
const HOSTS = 64;
const EK_ATTRS = 0x000300b2;
const RUNS = 5;
const RUN_MS = 1500;

/**
 * Seeds a database: HOSTS hosts of one hardware class, each with a bound software AK, the class's
 * baseline, and `n` evidence bodies (round robin over the hosts) over nonces issued for them.
 */
export async function seed(db: string, n: number, o: { logByHash?: boolean } = {}): Promise<string[]> {
  const store = await openStore(db);
  try {
    const log = parseEventLog(LOG);
    await addPolicy(store, "bench", Date.now(), { kind: "baseline", name: "gce", hardwareClass: "gce-n1", document: learnBaseline("gce", [log], PCRS) });
    const replayed = replayEventLog(log).pcrs;
    const banks = log.algorithms.map((a) => a.bank);
    const pcrs = Object.fromEntries(banks.map((b) => [b, Object.fromEntries(PCRS.map((p) => [String(p), replayed[b][p].toString("hex")]))]));
    const pcrDigest = createHash("sha256").update(Buffer.concat(banks.flatMap((b) => PCRS.map((p) => replayed[b][p])))).digest();
    const eventLog = { eventLog: LOG.toString("base64") };
    const eventLogSha256 = { eventLogSha256: createHash("sha256").update(LOG).digest("hex") };

    const hosts: { privateKey: KeyObject; akName: Buffer }[] = [];
    for (let h = 0; h < HOSTS; h++) {
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const ak = tpmtFromKey(publicKey, AK_ATTRS);
      const ekPublic = encodeTpmtPublic(tpmtFromKey(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey, EK_ATTRS));
      const name = `bench-${h}`;
      await store.hosts.add({ at: Date.now(), name, hardwareClass: "gce-n1", policyVersion: "v2", trustMethod: "ek-cert", eks: [{ name: objectName(decodeTpmtPublic(ekPublic)), public: ekPublic, cert: null }] });
      await store.aks.bind({ at: Date.now(), hostName: name, name: objectName(ak), public: encodeTpmtPublic(ak) });
      hosts.push({ privateKey, akName: objectName(ak) });
    }
    const nonces = await store.transaction(async (tx) => {
      const out: Buffer[] = [];
      for (let i = 0; i < n; i++) out.push((await tx.nonces.issue({ at: Date.now(), purpose: NONCE_PURPOSE, subject: hosts[i % HOSTS].akName.toString("hex"), ttlMs: 3_600_000 })).value);
      return out;
    });
    return nonces.map((nonce, i) => {
      const { privateKey, akName } = hosts[i % HOSTS];
      const attest = encodeTpmsAttest({
        magic: TPM_GENERATED_VALUE,
        type: TPM_ST.ATTEST_QUOTE,
        qualifiedSigner: akName,
        extraData: nonce,
        clockInfo: { clock: 1234n, resetCount: 7, restartCount: 0, safe: true },
        firmwareVersion: 0x2019102300163636n,
        attested: { pcrSelect: banks.map((b) => pcrSelection(hashAlgByName(b)!, PCRS)), pcrDigest },
      });
      const raw = createSign("sha256").update(attest).sign({ key: privateKey, dsaEncoding: "ieee-p1363" });
      const signature = encodeTpmtSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: raw.subarray(0, 32), s: raw.subarray(32) });
      // by hash: after each host's first attestation, which sends the log
      const log = o.logByHash && i >= HOSTS ? eventLogSha256 : eventLog;
      return JSON.stringify({ akNameHex: akName.toString("hex"), nonceHex: nonce.toString("hex"), quotes: [{ attest: attest.toString("base64"), signature: signature.toString("base64") }], pcrs, ...log });
    });
  } finally {
    await store.close();
  }
}

/** `tpmtrust serve` on a free port of 127.0.0.1; resolves with its URL once it listens. */
function serve(db: string, dir: string, args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(ROOT, "bin/tpmtrust.js"), "serve", "--db", db, "--listen", "127.0.0.1:0", "--admin-token-file", join(dir, `admin-${Date.now()}`), ...args], {
    stdio: ["ignore", "pipe", process.env.TPMTRUST_BENCH_LOG ? "inherit" : "ignore"],
    env: { ...process.env, TPMTRUST_LOG_LEVEL: "warn" },
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^(http:\/\/\S+)\n/.exec(out);
      if (m) resolve({ url: m[1], child });
    });
    child.once("exit", (code) => reject(new Error(`tpmtrust serve exited with ${code}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

const call = (url: string, method: "GET" | "POST", body?: string) => httpCall(agent, url, method, body);

/** Runs `op` with CONCURRENCY requests in flight for RUN_MS (or until `op` returns false); requests per second. */
async function rate(op: () => Promise<boolean>): Promise<number> {
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(RUN_MS) * 1_000_000n;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (process.hrtime.bigint() < end && (await op())) n++;
    }),
  );
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

/**
 * Steady state: hosts re-attesting an unchanged boot name their log by SHA-256 and are judged from
 * memory. `cold`: every attestation sends its 34 KB log, which is replayed and judged anew (no
 * judgement cache), as on a host's first attestation after boot.
 */
async function measure(dialect: string, db: string, dir: string, cold = false): Promise<BenchFigure> {
  const bodies = await seed(db, 20_000, { logByHash: !cold });
  const { url, child } = await serve(db, dir, cold ? ["--judgement-cache", "0"] : []);
  try {
    let next = 0;
    const attestOne = async () => {
      const body = bodies[next++];
      if (body === undefined) return false;
      const r = await call(`${url}/v1/attestations`, "POST", body);
      if (r.status !== 200 || JSON.parse(r.body).verdict !== "pass") throw new Error(`attestation failed: ${r.status} ${r.body.slice(0, 300)}`);
      return true;
    };
    const health = async () => {
      const r = await call(`${url}/healthz`, "GET");
      if (r.status !== 200) throw new Error(`healthz: ${r.status}`);
      return true;
    };
    // warm-up: each host's first attestation (sends its log), the signing key, JIT, connections, SQLite's WAL
    for (let i = 0; i < HOSTS; i++) await attestOne();
    await rate(health);
    await rate(attestOne);
    const s: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      b.push(await rate(health));
      s.push(await rate(attestOne));
    }
    if (next > bodies.length) throw new Error("evidence pool exhausted: raise the pool size");
    const ms = median(s);
    const mb = median(b);
    return {
      name: `attestations end to end over HTTP, ${dialect}, ${cold ? "cold: every 34 KB event log sent, replayed and judged" : "steady state: unchanged boots, log named by SHA-256"} (3-bank quote, baseline, ${HOSTS} hosts, ${CONCURRENCY} in flight)`,
      unit: "attestations/s",
      median: ms,
      runs: s,
      baseline: { name: "GET /healthz, same client and server", median: mb },
      ratio: ms / mb,
      ...(dialect === "SQLite" && !cold ? { goal: ">= 1000 attestations/s" } : {}),
    };
  } finally {
    await stop(child);
  }
}

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-bench-attest-"));
  const out: BenchFigure[] = [];
  try {
    out.push(await measure("SQLite", join(dir, "bench.db"), dir));
    out.push(await measure("SQLite", join(dir, "bench-cold.db"), dir, true));
    const pg = await startPostgres();
    try {
      out.push(await measure("PostgreSQL", await pg.createDatabase(), dir));
    } finally {
      await pg.stop();
    }
  } finally {
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
