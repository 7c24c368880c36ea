/**
 * Trust withdrawn through one instance holds at another (issue #12 §2): two `serve` instances on one
 * real PostgreSQL, a swtpm host with an EK certificate from a local CA. Instance A's own monitor is
 * stopped, so nothing A does after a change can account for what B does: B refuses the host's key
 * release and its next attestation after an EK is revoked through A (its per-host trust cache is
 * invalidated through the database's trust version), and B's periodic sweep turns the host
 * unhealthy, with its token revoked, after the EK root is removed through A.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activate, identify, readState, ServiceClient } from "../../src/agent/index.js";
import { certifySrk, withSrk } from "../../src/agent/keys.js";
import { learnBaseline } from "../../src/policy/index.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { decodeTpm2bPublic } from "../../src/tpm/structures.js";
import { startPostgres, type PgCluster } from "../helpers/postgres.js";
import { addPolicy, api, evidenceFor, startLogHost, startService, trustSwtpmCa, type LogHost, type Service } from "../e2e/harness.js";

const LOG = "rhel8-gce-uefi.bin";
const CLASS = "pg-lab";
const HOST = "db-07";
let dir: string;
let stateDir: string;
let pg: PgCluster;
let a: Service;
let b: Service;
let host: LogHost;
let ekHashes: string[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-cross-"));
  stateDir = join(dir, "agent");
  // master key files must be in the key directory
  process.env.TPMTRUST_KEY_DIR = dir;
  [pg, host] = await Promise.all([startPostgres(), startLogHost(LOG)]);
  a = await startService(dir, pg.url);
  // B sweeps only when told (first part): each refusal below is B's decision, not a sweep's
  b = await startService(dir, pg.url, { admin: a.admin, attest: { sweepMs: 0 } });
  await trustSwtpmCa(a, host.swtpm);
  const p = await addPolicy(a, "baseline", "pg-lab-baseline", CLASS, learnBaseline("pg-lab-baseline", [parseEventLog(host.log)], [0, 1, 2, 3, 4, 5, 6, 7]));
  assert.equal(p.status, 201, JSON.stringify(p.body));
  for (const [method, path, body] of [
    ["POST", "/v1/keys/servers", { name: "local", kind: "local", config: { masterKeyFile: join(dir, "master.key") } }],
    ["POST", "/v1/keys/providers", { name: "disks" }],
    ["PUT", `/v1/keys/clusters/${CLASS}`, { hardwareClasses: [CLASS], providers: ["disks"] }],
  ] as const) {
    const r = await api(a.url, method, path, body, a.admin);
    assert.ok(r.status === 200 || r.status === 201, `${path}: ${JSON.stringify(r.body)}`);
  }
  const { identity } = await identify(host.tpm);
  ekHashes = identity.ekPublics.map((e: { public: string }) => ekHash(decodeTpm2bPublic(Buffer.from(e.public, "base64"))));
  const r = await api(a.url, "POST", "/v1/hosts", { name: HOST, hardwareClass: CLASS, policyVersion: "v2", identity }, a.admin);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  await activate(host.tpm, new ServiceClient({ url: a.url }), { stateDir });
  // from here on A's monitor does nothing: no sweep of A can turn the host unhealthy
  await a.server.app.monitor.stop();
});

after(async () => {
  await Promise.all([a?.close(), b?.close(), host?.close()]);
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function attestAt(s: Service): Promise<any> {
  const r = await api(s.url, "POST", "/v1/attestations", await evidenceFor(s.url, host.tpm, stateDir, host.log));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}
const release = async (s: Service, token: string) =>
  api(s.url, "POST", "/v1/keys/disks/release", { srk: await withSrk(host.tpm, (srk) => certifySrk(host.tpm, srk, readState(stateDir).akHandle!)), size: 32 }, token);
const healthAt = async (s: Service) => (await api(s.url, "GET", `/v1/hosts/${HOST}`, undefined, s.admin)).body;

function refused(r: { status: number; body: any }, code: string, cause?: string): void {
  assert.ok(r.status >= 400, JSON.stringify(r.body));
  assert.equal(r.body.code, code, JSON.stringify(r.body));
  if (cause) assert.equal(r.body.details?.cause ?? r.body.cause, cause, JSON.stringify(r.body));
}

test("an EK revoked through A: B refuses the host's key release with the token it issued before, and its next attestation", async () => {
  const v = await attestAt(b);
  assert.equal(v.verdict, "pass", JSON.stringify(v));
  assert.equal((await release(b, v.token)).status, 200, "the control: released before the revocation");
  for (const h of ekHashes) assert.equal((await api(a.url, "POST", "/v1/trust/revoked-eks", { ekHash: h, reason: "stolen" }, a.admin)).status, 201);
  refused(await release(b, v.token), "ERR_EK_NOT_TRUSTED", "ERR_EK_REVOKED");
  const after = await attestAt(b);
  assert.deepEqual([after.verdict, after.code, after.token], ["fail", "ERR_EK_NOT_TRUSTED", undefined]);
  assert.deepEqual([(await healthAt(a)).health, (await healthAt(a)).healthReason], ["unhealthy", "ERR_EK_NOT_TRUSTED"]);
  refused(await release(b, v.token), "ERR_TOKEN_REVOKED");
  for (const h of ekHashes) assert.equal((await api(a.url, "DELETE", `/v1/trust/revoked-eks/${h}`, undefined, a.admin)).status, 204);
});

test("the EK root removed through A: B's periodic sweep turns the host unhealthy and revokes its token without an attestation", async () => {
  await b.close();
  b = await startService(dir, pg.url, { admin: a.admin, attest: { sweepMs: 50 } });
  const v = await attestAt(b);
  assert.equal(v.verdict, "pass", JSON.stringify(v));
  assert.equal((await healthAt(b)).health, "healthy");
  const root = createHash("sha256").update(new X509Certificate(host.swtpm.ca!.rootPem).raw).digest("hex");
  assert.equal((await api(a.url, "DELETE", `/v1/trust/cas/${root}`, undefined, a.admin)).status, 204);
  while ((await healthAt(b)).health !== "unhealthy") await new Promise((res) => setTimeout(res, 20));
  assert.equal((await healthAt(b)).healthReason, "ERR_EK_NOT_TRUSTED");
  const entry = (await api(b.url, "GET", `/v1/audit?action=host.health&subject=${HOST}&order=desc&limit=1`, undefined, b.admin)).body.entries[0];
  assert.deepEqual([entry.actor, entry.details.reason, entry.details.revokedTokens], ["system", "ERR_EK_NOT_TRUSTED", 1]);
  refused(await release(b, v.token), "ERR_TOKEN_REVOKED");
});
