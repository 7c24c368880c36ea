/**
 * Revoking an EK against the running service (issue #12 §2), with real swtpm hosts over real HTTP:
 * after `tpmtrust trust ek revoke` (another process: no sweep of this instance is told) every later
 * decision about the victim's TPM refuses with its exact code — key use with a token issued before
 * (ERR_EK_NOT_TRUSTED, cause ERR_EK_REVOKED), certificate enrolment, AK activation and DPS
 * registration (ERR_EK_REVOKED), attestation (verdict fail, ERR_EK_NOT_TRUSTED: unhealthy, tokens
 * revoked); a bystander host is untouched; revoked through the API, the service's sweep turns the
 * host unhealthy without an attestation; unrevoked, the TPM is trusted again but tokens revoked stay
 * revoked and health returns only with a passing attestation.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activate, identify, readState, ServiceClient } from "../../src/agent/index.js";
import { certifySrk, withSrk } from "../../src/agent/keys.js";
import { enrollCert } from "../../src/agent/enroll-cert.js";
import { provisionDevice } from "../../src/agent/dps-device.js";
import { withTpm } from "../../src/agent/tpm.js";
import { initCa } from "../../src/ca/authority.js";
import { TpmTrustError } from "../../src/errors.js";
import { learnBaseline } from "../../src/policy/index.js";
import { decodeTpm2bPublic } from "../../src/tpm/structures.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { cli } from "../helpers/cli.js";
import { startDps, type DpsService } from "../helpers/dps.js";
import { addPolicy, api, evidenceFor, out, startLogHost, trustSwtpmCa, type LogHost, type Service } from "../e2e/harness.js";

const LOG = "rhel8-gce-uefi.bin";
const CLASS = "lab";
let dir: string;
let db: string;
/** the service: attestation, keys, certificates and DPS */
let dps: DpsService;
let svc: Service;
let victim: LogHost;
let bystander: LogHost;
let identityFile: string;
let victimEks: string[];
const state = (name: string) => join(dir, `state-${name}`);

async function addHost(h: LogHost, name: string): Promise<string> {
  const { identity } = await identify(h.tpm);
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(identity));
  const r = await api(svc.url, "POST", "/v1/hosts", { name, hardwareClass: CLASS, policyVersion: "v2", identity }, svc.admin);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  await activate(h.tpm, new ServiceClient({ url: svc.url }), { stateDir: state(name) });
  return file;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-ek-revoke-"));
  db = join(dir, "tpmtrust.db");
  // master key files must be in the key directory
  process.env.TPMTRUST_KEY_DIR = dir;
  [victim, bystander] = await Promise.all([startLogHost(LOG), startLogHost(LOG)]);
  // no periodic sweep: what refuses below is each decision, not a sweep
  dps = await startDps(db, { dir, attest: { sweepMs: 0 }, provisioning: { retryAfterSeconds: 0 } });
  svc = { url: dps.url, admin: readFileSync(join(dir, "admin-token"), "utf8").trim(), server: dps.server, close: () => dps.close() };
  await trustSwtpmCa(svc, victim.swtpm);
  const p = await addPolicy(svc, "baseline", "lab-baseline", CLASS, learnBaseline("lab-baseline", [parseEventLog(victim.log)], [0, 1, 2, 3, 4, 5, 6, 7]));
  assert.equal(p.status, 201, JSON.stringify(p.body));
  await initCa(svc.server.store, { actor: "test", now: Date.now(), keyDir: join(dir, "ca-keys") });
  for (const [method, path, body] of [
    ["POST", "/v1/ca/templates", { name: "attested", keyAttestation: { mode: "required", trustModels: ["ek-cert"] } }],
    ["POST", "/v1/keys/servers", { name: "local", kind: "local", config: { masterKeyFile: join(dir, "master.key") } }],
    ["POST", "/v1/keys/providers", { name: "disks" }],
    ["PUT", `/v1/keys/clusters/${CLASS}`, { hardwareClasses: [CLASS], providers: ["disks"] }],
    ["POST", "/v1/provisioning/enrollment-groups", { name: "swtpm-vendor", caCertificates: [der(victim.swtpm.ca!.rootPem)], intermediateCertificates: [der(victim.swtpm.ca!.intermediatePem)] }],
  ] as const) {
    const r = await api(svc.url, method, path, body, svc.admin);
    assert.ok(r.status === 200 || r.status === 201, `${path}: ${JSON.stringify(r.body)}`);
  }
  const hub = await cli(["hubs", "add", "hub-1", "--hostname", "hub-1.azure-devices.example", "--db", db]);
  assert.equal(hub.code, 0, out(hub));
  identityFile = await addHost(victim, "victim");
  await addHost(bystander, "bystander");
  const { identity } = await identify(victim.tpm);
  victimEks = identity.ekPublics.map((e: { public: string }) => ekHash(decodeTpm2bPublic(Buffer.from(e.public, "base64"))));
});

after(async () => {
  await Promise.all([dps?.close(), victim?.close(), bystander?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function der(pem: string): string {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64").toString("base64");
}

/** One attestation of `h` (registered as `name`) over HTTP: the verdict body. */
async function attest(h: LogHost, name: string): Promise<any> {
  const r = await api(svc.url, "POST", "/v1/attestations", await evidenceFor(svc.url, h.tpm, state(name), h.log));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

const encrypt = (token: string) => api(svc.url, "POST", "/v1/keys/disks/encrypt", { plaintext: Buffer.from("secret").toString("base64") }, token);
const release = async (h: LogHost, name: string, token: string) =>
  api(svc.url, "POST", "/v1/keys/disks/release", { srk: await withSrk(h.tpm, (srk) => certifySrk(h.tpm, srk, readState(state(name)).akHandle!)), size: 32 }, token);
const enrol = (h: LogHost, name: string) => enrollCert(h.tpm, new ServiceClient({ url: svc.url }), { stateDir: state(name), template: "attested", subject: `CN=${name}` });
const activateAk = (h: LogHost, name: string) => activate(h.tpm, new ServiceClient({ url: svc.url }), { stateDir: state(name) });
const provision = (h: LogHost) => withTpm(h.swtpm.tcti, (c) => provisionDevice(c, new ServiceClient({ url: dps.url }), { idScope: dps.idScope }));
const health = async (name: string) => (await api(svc.url, "GET", `/v1/hosts/${name}`, undefined, svc.admin)).body;

function refused(a: { status: number; body: any }, code: string, cause?: string): void {
  assert.ok(a.status >= 400, JSON.stringify(a.body));
  assert.equal(a.body.code, code, JSON.stringify(a.body));
  if (cause) assert.equal(a.body.details?.cause ?? a.body.cause, cause, JSON.stringify(a.body));
}
const rejectsWith = (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TpmTrustError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });

let token: string;

test("the control: before the revocation the victim attests, uses and releases keys, enrols a certificate and registers with DPS", async () => {
  const v = await attest(victim, "victim");
  assert.equal(v.verdict, "pass", JSON.stringify(v));
  token = v.token;
  assert.equal((await encrypt(token)).status, 200);
  assert.equal((await release(victim, "victim", token)).status, 200);
  await enrol(victim, "victim");
  assert.equal((await provision(victim)).status, "assigned");
});

test("`tpmtrust trust ek revoke` from another process: every later decision refuses with its code", async () => {
  const r = await cli(["trust", "ek", "revoke", identityFile, "--reason", "stolen", "--db", db]);
  assert.equal(r.code, 0, out(r));
  // the token was issued before and is not revoked yet (no sweep was told): the key decisions refuse it
  refused(await encrypt(token), "ERR_EK_NOT_TRUSTED", "ERR_EK_REVOKED");
  refused(await release(victim, "victim", token), "ERR_EK_NOT_TRUSTED", "ERR_EK_REVOKED");
  await rejectsWith(enrol(victim, "victim"), "ERR_EK_NOT_TRUSTED");
  await rejectsWith(activateAk(victim, "victim"), "ERR_EK_REVOKED");
  // DPS answers in its own wire format (403, errorCode 403001); its audit entry holds the code
  await assert.rejects(provision(victim), (e: unknown) => {
    assert.deepEqual([(e as TpmTrustError).details?.status, (e as TpmTrustError).details?.errorCode], [403, 403001], String(e));
    assert.match((e as Error).message, /EK [0-9a-f]{64} is revoked: stolen/);
    return true;
  });
  const denied = (await api(svc.url, "GET", "/v1/audit?action=provisioning.device.challenge&order=desc&limit=1", undefined, svc.admin)).body.entries[0];
  assert.deepEqual([denied.outcome, denied.details.code], ["denied", "ERR_EK_REVOKED"], JSON.stringify(denied));
  const v = await attest(victim, "victim");
  assert.deepEqual([v.verdict, v.code, v.token], ["fail", "ERR_EK_NOT_TRUSTED", undefined]);
  const h = await health("victim");
  assert.deepEqual([h.health, h.healthReason], ["unhealthy", "ERR_EK_NOT_TRUSTED"]);
  const audit = (await api(svc.url, "GET", "/v1/audit?action=host.health&subject=victim&order=desc&limit=1", undefined, svc.admin)).body.entries[0].details;
  assert.deepEqual([audit.reason, audit.revokedTokens], ["ERR_EK_NOT_TRUSTED", 1]);
  refused(await encrypt(token), "ERR_TOKEN_REVOKED");
  // the bystander is untouched
  const b = await attest(bystander, "bystander");
  assert.equal(b.verdict, "pass", JSON.stringify(b));
  assert.equal((await encrypt(b.token)).status, 200);
});

test("unrevoked: the TPM is trusted again, but revoked tokens stay revoked and health returns only with a passing attestation", async () => {
  const r = await cli(["trust", "ek", "unrevoke", identityFile, "--db", db]);
  assert.equal(r.code, 0, out(r));
  refused(await encrypt(token), "ERR_TOKEN_REVOKED");
  assert.equal((await health("victim")).health, "unhealthy");
  await activateAk(victim, "victim");
  const v = await attest(victim, "victim");
  assert.equal(v.verdict, "pass", JSON.stringify(v));
  assert.equal((await health("victim")).health, "healthy");
  assert.equal((await encrypt(v.token)).status, 200);
  await enrol(victim, "victim");
  assert.equal((await provision(victim)).status, "assigned");
  token = v.token;
});

test("revoked through the API: the service's sweep turns the host unhealthy and revokes its token without waiting for an attestation", async () => {
  const r = await api(svc.url, "POST", "/v1/trust/revoked-eks", { ekHash: victimEks[0], reason: "decommissioned" }, svc.admin);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  while ((await health("victim")).health !== "unhealthy") await new Promise((res) => setTimeout(res, 20));
  assert.equal((await health("victim")).healthReason, "ERR_EK_NOT_TRUSTED");
  refused(await encrypt(token), "ERR_TOKEN_REVOKED");
  assert.equal((await health("bystander")).health, "healthy");
  assert.equal((await api(svc.url, "DELETE", `/v1/trust/revoked-eks/${victimEks[0]}`, undefined, svc.admin)).status, 204);
});
