/**
 * Hosts simulated in software for load and crash tests, with the exact TPM formats: each has an
 * ECC P-256 EK public built from the standard EK template and an AK public from the AK template
 * (keys from node:crypto), quotes are TPMS_ATTEST over the policy PCRs of the RHEL 8 fixture log,
 * signed by the AK as TPMT_SIGNATURE, so the service does all its real work and the TPM is not what
 * is measured. Also: `tpmtrust serve` as a child process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, createSign, randomBytes, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import SqliteDatabase from "better-sqlite3";
import pg from "pg";
import { join } from "node:path";
import { NONCE_PURPOSE } from "../../src/attest/challenge.js";
import { addPolicy } from "../../src/attest/policies.js";
import { newKeyPair } from "../../src/crypto/keygen.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import type { Store } from "../../src/store/index.js";
import { akTemplate } from "../../src/tpm/commands/ak.js";
import { ekTemplate } from "../../src/tpm/commands/ek.js";
import { hashAlgByName, TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "../../src/tpm/constants.js";
import { encodeTpmsAttest, encodeTpmtPublic, encodeTpmtSignature, objectName, pcrSelection } from "../../src/tpm/structures.js";
import type { TpmsAttest, TpmtPublic } from "../../src/tpm/types.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { parseEventLog, replayEventLog } from "../../src/verify/eventlog/index.js";
import { testEkCertificate, testEkCertificates, trustTestEkRoot } from "./ek-trust.js";

const ROOT = join(import.meta.dirname, "..", "..");
export const FLEET_LOG = readFileSync(join(ROOT, "test/fixtures/eventlogs/rhel8-gce-uefi.bin"));
export const FLEET_CLASS = "gce-n1";
const PCRS = [0, 1, 2, 3, 4, 5, 6, 7];

function withKey(t: TpmtPublic, key: KeyObject): TpmtPublic {
  const jwk = key.export({ format: "jwk" });
  if (t.type !== TPM_ALG.ECC) throw new Error("ECC templates only");
  return { ...t, unique: { x: Buffer.from(jwk.x!, "base64url"), y: Buffer.from(jwk.y!, "base64url") } };
}

export interface SoftHost {
  name: string;
  /** TPMT_PUBLIC of the EK (ecc-p256 template) */
  ekPublic: Buffer;
  ekName: Buffer;
  /** the AD CS EK hash, for the allow-list */
  ekHash: string;
  akPublic: Buffer;
  akName: Buffer;
  akKey: KeyObject;
}

export function softHost(name: string): SoftHost {
  // not generateKeyPairSync: its keys can deadlock an export at this scale (src/crypto/keygen.ts)
  const ek = newKeyPair("ecdsa-p256");
  const ak = newKeyPair("ecdsa-p256");
  const ekT = withKey(ekTemplate("ecc-p256"), ek.publicKey);
  const akT = withKey(akTemplate({ type: "ecc" }), ak.publicKey);
  return { name, ekPublic: encodeTpmtPublic(ekT), ekName: objectName(ekT), ekHash: ekHash(ek.publicKey), akPublic: encodeTpmtPublic(akT), akName: objectName(akT), akKey: ak.privateKey };
}

/** The `agent identify` JSON of a software host (no EK certificate: a v1 host needs its EK allow-listed). */
export function identityOf(h: SoftHost): unknown {
  const tpm2b = Buffer.concat([Buffer.from([h.ekPublic.length >> 8, h.ekPublic.length & 0xff]), h.ekPublic]);
  return { ekPublics: [{ alg: "ecc-p256", public: tpm2b.toString("base64") }], ekCertificates: [], tpm: { manufacturer: "SIM", vendor: "software fleet", firmware: "1.0" } };
}

/** The baseline every fleet host passes (learned from the log its quotes cover). */
export async function addFleetBaseline(store: Store): Promise<void> {
  await addPolicy(store, "test", Date.now(), { kind: "baseline", name: "fleet", hardwareClass: FLEET_CLASS, document: learnBaseline("fleet", [parseEventLog(FLEET_LOG)], PCRS) });
}

/** Registers hosts with bound AKs directly in the store (what registration + activation end in, EK certificates from the test EK root), in batches. */
export async function seedHosts(store: Store, hosts: SoftHost[]): Promise<void> {
  await trustTestEkRoot(store);
  for (let i = 0; i < hosts.length; i += 500) {
    const batch = hosts.slice(i, i + 500);
    const certs = await Promise.all(batch.map((h) => testEkCertificate(h.ekPublic)));
    await store.transaction(async (tx) => {
      for (const [k, h] of batch.entries()) {
        await tx.hosts.add({ at: Date.now(), name: h.name, hardwareClass: FLEET_CLASS, policyVersion: "v2", trustMethod: "ek-cert", eks: [{ name: h.ekName, public: h.ekPublic, cert: certs[k] }] });
        await tx.aks.bind({ at: Date.now(), hostName: h.name, name: h.akName, public: h.akPublic });
      }
    });
  }
}

/**
 * Rows straight into a table of the store's database, around the store, in one transaction per
 * 5,000 (SQLite: one prepared INSERT; PostgreSQL: one INSERT … SELECT from a JSON array). For seeding
 * large fleets only: the rows must be in the stored format (schema.ts) and the store idle meanwhile.
 */
async function bulkInsert(store: Store, table: string, rows: Record<string, unknown>[]): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]);
  if (store.dialect === "sqlite") {
    const db = new SqliteDatabase(store.location, { fileMustExist: true });
    try {
      db.pragma("busy_timeout = 60000");
      const insert = db.prepare(`insert into ${table} (${columns.join(", ")}) values (${columns.map(() => "?").join(", ")})`);
      const all = db.transaction((slice: Record<string, unknown>[]) => {
        for (const r of slice) insert.run(...columns.map((c) => r[c]));
      });
      for (let i = 0; i < rows.length; i += 5000) all(rows.slice(i, i + 5000));
    } finally {
      db.close();
    }
    return;
  }
  const c = new pg.Client({ connectionString: store.location });
  await c.connect();
  try {
    for (let i = 0; i < rows.length; i += 5000) {
      await c.query(`insert into ${table} (${columns.join(", ")}) select ${columns.join(", ")} from json_populate_recordset(null::${table}, $1::json)`, [JSON.stringify(rows.slice(i, i + 5000))]);
    }
  } finally {
    await c.end();
  }
}

/**
 * seedHosts and preQuotes for large fleets (npm run load): hosts, their EKs (certificates from the
 * test root, one signature each) and bound AKs, then `perHost` nonces per host with their quotes,
 * all inserted in bulk. `healthy`: the hosts start healthy, last attested at `at` (a fleet in its
 * steady state, whose next verdicts keep their health); otherwise unknown, as after registration.
 */
export async function seedFleet(store: Store, hosts: SoftHost[], perHost: number, o: { ttlMs: number; healthy?: { at: number; deadlineAt: number } }): Promise<Quote[][]> {
  await trustTestEkRoot(store);
  const at = Date.now();
  const certs = await testEkCertificates(hosts.map((h) => h.ekPublic));
  const hx = (b: Buffer) => b.toString("hex");
  const health = o.healthy
    ? { health: "healthy", health_changed_at: o.healthy.at, last_attestation_at: o.healthy.at, deadline_at: o.healthy.deadlineAt }
    : { health: "unknown", health_changed_at: null, last_attestation_at: null, deadline_at: null };
  await bulkInsert(
    store,
    "hosts",
    hosts.map((h) => ({ name: h.name, hardware_class: FLEET_CLASS, policy_version: "v2", trust_method: "ek-cert", health_reason: null, ...health, tags: "[]", platform: null, created_at: at, updated_at: at, disabled_at: null })),
  );
  await bulkInsert(store, "host_eks", hosts.map((h, i) => ({ ek_name: hx(h.ekName), host_name: h.name, public: hx(h.ekPublic), cert: hx(certs[i]) })));
  await bulkInsert(store, "aks", hosts.map((h) => ({ name: hx(h.akName), host_name: h.name, public: hx(h.akPublic), bound_at: at, ak_cert: null })));
  const nonces = hosts.map(() => Array.from({ length: perHost }, () => randomBytes(32)));
  await bulkInsert(
    store,
    "nonces",
    hosts.flatMap((h, i) => nonces[i].map((n) => ({ value: hx(n), purpose: NONCE_PURPOSE, subject: hx(h.akName), issued_at: at, expires_at: at + o.ttlMs, consumed_at: null }))),
  );
  return hosts.map((h, i) => nonces[i].map((n) => quote(h, n)));
}

/** A quote's parts for one host and one nonce; `evidenceJson` assembles the request body. */
export interface Quote {
  akNameHex: string;
  nonceHex: string;
  attest: string;
  signature: string;
}

const replayed = (() => {
  const log = parseEventLog(FLEET_LOG);
  const banks = log.algorithms.map((a) => a.bank);
  const pcrs = replayEventLog(log).pcrs;
  return {
    banks,
    pcrsJson: JSON.stringify(Object.fromEntries(banks.map((b) => [b, Object.fromEntries(PCRS.map((p) => [String(p), pcrs[b][p].toString("hex")]))]))),
    digest: createHash("sha256").update(Buffer.concat(banks.flatMap((b) => PCRS.map((p) => pcrs[b][p])))).digest(),
  };
})();
const LOG_B64 = FLEET_LOG.toString("base64");
const LOG_SHA256 = createHash("sha256").update(FLEET_LOG).digest("hex");

/** Issues a nonce per (host, round) through the store and signs a quote over it: pre-generated evidence. */
export async function preQuotes(store: Store, hosts: SoftHost[], perHost: number, ttlMs = 3_600_000): Promise<Quote[][]> {
  const nonces: Buffer[][] = hosts.map(() => []);
  for (let round = 0; round < perHost; round++) {
    for (let i = 0; i < hosts.length; i += 2000) {
      await store.transaction(async (tx) => {
        for (let j = i; j < Math.min(i + 2000, hosts.length); j++) nonces[j].push((await tx.nonces.issue({ at: Date.now(), purpose: NONCE_PURPOSE, subject: hosts[j].akName.toString("hex"), ttlMs })).value);
      });
    }
  }
  return hosts.map((h, i) => nonces[i].map((nonce) => quote(h, nonce)));
}

/** The TPMS_ATTEST a TPM would produce for a quote over the fleet's PCRs with `nonce`. */
export function quoteAttest(h: SoftHost, nonce: Buffer): TpmsAttest {
  return {
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST.ATTEST_QUOTE,
    qualifiedSigner: h.akName,
    extraData: nonce,
    clockInfo: { clock: 1234n, resetCount: 7, restartCount: 0, safe: true },
    firmwareVersion: 0x2019102300163636n,
    attested: { pcrSelect: replayed.banks.map((b) => pcrSelection(hashAlgByName(b)!, PCRS)), pcrDigest: replayed.digest },
  };
}

/** TPMT_SIGNATURE (ECDSA, SHA-256) of `data` by an AK's key, as TPM2_Quote returns it. */
export function signEcdsa(key: KeyObject, data: Buffer): Buffer {
  const raw = createSign("sha256").update(data).sign({ key, dsaEncoding: "ieee-p1363" });
  return encodeTpmtSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: raw.subarray(0, 32), s: raw.subarray(32) });
}

export function quote(h: SoftHost, nonce: Buffer): Quote {
  const attest = encodeTpmsAttest(quoteAttest(h, nonce));
  return { akNameHex: h.akName.toString("hex"), nonceHex: nonce.toString("hex"), attest: attest.toString("base64"), signature: signEcdsa(h.akKey, attest).toString("base64") };
}

/** The PCR values (bank → PCR → hex) the fleet's quotes cover. */
export const fleetPcrs = (): Record<string, Record<string, string>> => JSON.parse(replayed.pcrsJson);

/**
 * POST /v1/attestations body for a quote, with the PCR values and the event log (assembled per
 * request); `log: "sha256"` names the log by its hash, as the agent does once the service judged it.
 */
export function evidenceJson(q: Quote, o: { log: "bytes" | "sha256" } = { log: "bytes" }): string {
  const log = o.log === "bytes" ? `"eventLog":"${LOG_B64}"` : `"eventLogSha256":"${LOG_SHA256}"`;
  return `{"akNameHex":"${q.akNameHex}","nonceHex":"${q.nonceHex}","quotes":[{"attest":"${q.attest}","signature":"${q.signature}"}],"pcrs":${replayed.pcrsJson},${log}}`;
}

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** SIGTERM and wait */
  stop(): Promise<void>;
  /** SIGKILL and wait: no shutdown code runs */
  kill(): Promise<void>;
}

/** `tpmtrust serve` as operators run it, in a child process on a free port of 127.0.0.1. */
export function spawnServe(db: string, adminTokenFile: string, extra: string[] = []): Promise<ServeProcess> {
  const child = spawn(process.execPath, [join(ROOT, "bin/tpmtrust.js"), "serve", "--db", db, "--listen", "127.0.0.1:0", "--admin-token-file", adminTokenFile, ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TPMTRUST_LOG_LEVEL: "warn" },
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const end = (signal: NodeJS.Signals) => async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^(https?:\/\/\S+)$/m.exec(out);
      if (m) resolve({ url: m[1], child, stop: end("SIGTERM"), kill: end("SIGKILL") });
    });
    child.once("exit", (code) => reject(new Error(`tpmtrust serve exited with ${code}: ${err}`)));
  });
}
