/**
 * A host for attestation tests: a swtpm whose PCRs were extended with a real event log's digests
 * (in every bank the log carries; swtpm started with exactly those banks), an EK, an AK bound to a
 * registered host through the store, and the client side of the attestation protocol over HTTP.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  createAk,
  type CreatedKey,
  createEk,
  FlushContext,
  PCR_Extend,
  pcrReadAll,
  Quote,
  TpmClient,
} from "../../src/tpm/commands/index.js";
import { openTransport } from "../../src/tpm/transport/index.js";
import { hashAlgByName, HASH_ALGS } from "../../src/tpm/constants.js";
import { pcrSelection } from "../../src/tpm/structures.js";
import { parseEventLog, extendsPcr, type EventLog } from "../../src/verify/eventlog/index.js";
import { openStore, type Store } from "../../src/store/index.js";
import { buildApp } from "../../src/server/app.js";
import type { AttestConfig } from "../../src/attest/config.js";
import type { EvidenceBody } from "../../src/attest/evidence.js";
import { decodeTpmtPublic } from "../../src/tpm/structures.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { testEkCertificate, trustTestEkRoot } from "./ek-trust.js";
import { startSwtpm, type Swtpm } from "./swtpm.js";

export const EVENTLOGS = join(import.meta.dirname, "..", "fixtures", "eventlogs");
export const readLog = (file: string): Buffer => readFileSync(join(EVENTLOGS, file));

export interface TpmHost {
  swtpm: Swtpm;
  client: TpmClient;
  ek: { public: Buffer; name: Buffer };
  ak: CreatedKey;
  akNameHex: string;
  log?: Buffer;
  close(): Promise<void>;
}

/** Replays the log into the TPM: PCR_Extend of every extending event in every bank it has digests for. */
export async function extendLog(client: TpmClient, log: EventLog): Promise<void> {
  for (const ev of log.events) {
    if (!extendsPcr(ev)) continue;
    const digests = Object.entries(ev.digests).map(([bank, digest]) => ({ hashAlg: hashAlgByName(bank)!, digest }));
    await client.run(PCR_Extend, { pcrHandle: ev.pcr, digests });
  }
}

/** A swtpm with the banks of `logFile` (or `banks`), its PCRs extended with the log, an ECC EK and AK. */
export async function startTpmHost(o: { logFile?: string; banks?: string[]; akType?: "rsa" | "ecc" } = {}): Promise<TpmHost> {
  const log = o.logFile ? readLog(o.logFile) : undefined;
  const parsed = log ? parseEventLog(log) : undefined;
  const swtpm = await startSwtpm({ pcrBanks: o.banks ?? parsed?.algorithms.map((a) => a.bank) ?? ["sha256"] });
  const client = new TpmClient(await openTransport(swtpm.tcti));
  try {
    if (parsed) await extendLog(client, parsed);
    const ek = await createEk(client, "ecc-p256");
    const ak = await createAk(client, { handle: ek.handle, public: ek.public }, { type: o.akType ?? "ecc" });
    await client.run(FlushContext, { flushHandle: ek.handle }); // swtpm holds 3 transient objects: keep room for a second AK
    return {
      swtpm,
      client,
      ek: { public: ek.publicArea, name: ek.name },
      ak,
      akNameHex: ak.name.toString("hex"),
      ...(log ? { log } : {}),
      async close() {
        await client.close().catch(() => undefined);
        await swtpm.stop();
      },
    };
  } catch (e) {
    await client.close().catch(() => undefined);
    await swtpm.stop();
    throw e;
  }
}

/** Registers the host in the store and binds its AK (what registration + credential activation end in). */
export async function addHost(store: Store, h: TpmHost, o: { name: string; hardwareClass: string; policyVersion?: "v1" | "v2" }): Promise<void> {
  // what EK trust at registration would have found: v2 hosts trusted by an EK certificate that
  // chains to a stored root, v1 hosts by their allow-listed EK hash
  const policyVersion = o.policyVersion ?? "v2";
  let cert: Buffer | null = null;
  if (policyVersion === "v2") {
    await trustTestEkRoot(store);
    cert = await testEkCertificate(h.ek.public);
  } else {
    await store.trust.addAllowlist(ekHash(decodeTpmtPublic(h.ek.public)), { at: Date.now() });
  }
  await store.hosts.add({ at: Date.now(), name: o.name, hardwareClass: o.hardwareClass, policyVersion, trustMethod: policyVersion === "v2" ? "ek-cert" : "ek-key", eks: [{ name: h.ek.name, public: h.ek.public, cert }] });
  await store.aks.bind({ at: Date.now(), hostName: o.name, name: h.ak.name, public: h.ak.publicArea });
}

export interface ChallengeAnswer {
  nonceHex: string;
  expiresAt: number;
  host: string;
  pcrSelection: { bank: string; pcrs: number[] }[];
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: r.status, body: r.status === 204 ? undefined : await r.json() };
}

/** Asks `base` for a challenge for the host's AK. */
export async function challenge(base: string, h: TpmHost, banks?: string[]): Promise<ChallengeAnswer> {
  const r = await postJson(`${base}/v1/attestations/challenge`, { akNameHex: h.akNameHex, ...(banks ? { banks } : {}) });
  if (r.status !== 201) throw new Error(`challenge: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * What the agent sends: one quote per bank of the selection by `signer` (default the host's AK) over
 * the nonce, the PCR values read from the TPM, and the event log.
 */
export async function evidence(h: TpmHost, c: ChallengeAnswer, o: { signer?: CreatedKey; eventLog?: Buffer | null; logByHash?: boolean } = {}): Promise<EvidenceBody> {
  const signer = o.signer ?? h.ak;
  const nonce = Buffer.from(c.nonceHex, "hex");
  const quotes: EvidenceBody["quotes"] = [];
  const pcrs: EvidenceBody["pcrs"] = {};
  for (const s of c.pcrSelection) {
    const sel = [pcrSelection(hashAlgByName(s.bank)!, s.pcrs)];
    const q = await h.client.run(Quote, { signHandle: signer.handle, qualifyingData: nonce, PCRselect: sel });
    quotes.push({ attest: q.attest.toString("base64"), signature: q.signatureBytes.toString("base64") });
    const read = await pcrReadAll(h.client, sel);
    for (const [alg, values] of read.values) {
      const bank = HASH_ALGS[alg].name;
      for (const [pcr, v] of values) (pcrs[bank] ??= {})[String(pcr)] = v.toString("hex");
    }
  }
  const log = o.eventLog === undefined ? h.log : o.eventLog ?? undefined;
  const logField = !log ? {} : o.logByHash ? { eventLogSha256: createHash("sha256").update(log).digest("hex") } : { eventLog: log.toString("base64") };
  return { akNameHex: h.akNameHex, nonceHex: c.nonceHex, quotes, pcrs, ...logField };
}

/** challenge → quote → evidence against `base` (or the challenge from `challengeBase`). */
export async function attestOnce(base: string, h: TpmHost, challengeBase = base): Promise<{ status: number; body: any }> {
  const c = await challenge(challengeBase, h);
  return postJson(`${base}/v1/attestations`, await evidence(h, c));
}

export interface Service {
  url: string;
  store: Store;
  /** an admin API token */
  admin: string;
  close(): Promise<void>;
}

/** The service on `db` at a random port of 127.0.0.1, with an injectable clock (the sweeper off unless `attest.sweepMs` says otherwise). */
export async function serveAttestation(db: string, o: { now?: () => number; attest?: Partial<AttestConfig> } = {}): Promise<Service> {
  const store = await openStore(db);
  const app = await buildApp({ store, logger: false, now: o.now, attest: { sweepMs: 0, ...o.attest } });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  const admin = (await store.adminTokens.create({ at: Date.now(), role: "admin" })).token;
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    admin,
    async close() {
      await app.close();
      await store.close();
    },
  };
}
