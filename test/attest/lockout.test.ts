/**
 * Nobody can lock a host out (issue #12): an anonymous caller who knows a host's EK public and its
 * AK's Name (neither is secret) floods activation starts and challenges from its own address until
 * it is refused; the real host, a swtpm driven by the agent's own register and attest, still
 * activates its AK and attests to a passing verdict.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activate, attest, identify, ServiceClient } from "../../src/agent/index.js";
import { addPolicy } from "../../src/attest/policies.js";
import { addHost } from "../../src/attest/hosts.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { akTemplate, TpmClient } from "../../src/tpm/commands/index.js";
import type { TPM_ALG } from "../../src/tpm/constants.js";
import { decodeTpm2bPublic, encodeTpm2bPublic } from "../../src/tpm/structures.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { EVENTLOGS, extendLog, serveAttestation, type Service } from "../helpers/attest-host.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";

const LOG = join(EVENTLOGS, "rhel8-gce-uefi.bin");
const ATTACKER = "127.0.0.5";
const LIMIT = 3;
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-lockout-"));
let svc: Service;
let swtpm: Swtpm;
let tpm: TpmClient;

before(async () => {
  const log = parseEventLog(readFileSync(LOG));
  swtpm = await startSwtpm({ pcrBanks: log.algorithms.map((a) => a.bank) });
  tpm = new TpmClient(new SwtpmTransport({ port: swtpm.port }));
  await extendLog(tpm, log);
  svc = await serveAttestation(join(dir, "t.db"), { attest: { challengeLimit: LIMIT, activationLimit: LIMIT, limitWindowMs: 3_600_000 } });
  await addPolicy(svc.store, "test", Date.now(), { kind: "baseline", name: "gce", hardwareClass: "gce", policyVersion: "v1", document: learnBaseline("gce", [log], [0, 1, 2, 3, 4, 5, 6, 7]) });
});
after(async () => {
  await tpm?.close().catch(() => undefined);
  await swtpm?.stop();
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A POST whose connection comes from the attacker's address. */
function postFrom(path: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(`${svc.url}${path}`, { method: "POST", localAddress: ATTACKER, headers: { "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** Sends `body` from the attacker until refused; asserts the calls before were served and the refusal is 429 ERR_TOO_MANY_ATTEMPTS. */
async function flood(path: string, body: () => unknown): Promise<void> {
  for (let i = 0; i < LIMIT; i++) assert.equal((await postFrom(path, body())).status, 201);
  for (let i = 0; i < 3; i++) {
    const r = await postFrom(path, body());
    assert.deepEqual([r.status, r.body.code], [429, "ERR_TOO_MANY_ATTEMPTS"]);
  }
}

test("an anonymous flood of activation starts and challenges for a host's EK and AK is cut at the attacker's address; the swtpm host still activates and attests (pass)", async () => {
  const { identity } = await identify(tpm);
  const ek = identity.ekPublics.find((e) => e.alg === "rsa2048")!;
  await svc.store.trust.addAllowlist(ekHash(decodeTpm2bPublic(Buffer.from(ek.public, "base64"))), { at: Date.now() });
  await addHost(svc.store, { name: "web-01", hardwareClass: "gce", policyVersion: "v1", identity }, { actor: "test", now: Date.now() });

  // the EK public is public: the attacker starts activations for it with AKs of its own
  const t = akTemplate() as Extract<TpmtPublic, { type: typeof TPM_ALG.RSA }>;
  await flood("/v1/activations", () => ({ ekPublic: ek.public, akPublic: encodeTpm2bPublic({ ...t, unique: randomBytes(256) }).toString("base64") }));

  const service = new ServiceClient({ url: svc.url });
  const stateDir = join(dir, "agent");
  const state = await activate(tpm, service, { stateDir, ekAlg: "rsa2048", akHandle: null });
  assert.equal(state.host, "web-01");

  // the AK's Name is in every quote the host ever sent: the attacker asks challenges for it
  await flood("/v1/attestations/challenge", () => ({ akNameHex: state.akNameHex }));

  const r = await attest(tpm, service, { stateDir, eventLog: LOG, eventLogRequired: true });
  assert.deepEqual([r.verdict, r.code, r.host], ["pass", null, "web-01"], JSON.stringify(r));
  assert.ok(r.token);
});
