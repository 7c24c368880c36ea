/**
 * The agent end to end on SQLite: a swtpm host whose PCRs hold a real GCE log's digests, the service
 * over real HTTP on 127.0.0.1, the CLI as operators and agents run it.
 *
 *   agent identify > host.json → hosts add → agent register (credential activation) → agent attest
 *   → token verified with the JWKS; a baseline from another log fails with a diff; agent run until
 *   SIGTERM; TLS with --ca-cert; and the negatives with their stable codes.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { activate, attest, identify, readState, readToken, ServiceClient, withEk } from "../../src/agent/index.js";
import { tpm2bPublic } from "../../src/agent/tpm.js";
import { TpmTrustError } from "../../src/errors.js";
import { TPMA_OBJECT } from "../../src/tpm/constants.js";
import {
  ActivateCredential,
  akTemplate,
  Create,
  createAk,
  ekAuth,
  FlushContext,
  ReadPublic,
  TpmClient,
} from "../../src/tpm/commands/index.js";
import { openTransport } from "../../src/tpm/transport/index.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject, decodeTpm2bPublic } from "../../src/tpm/structures.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { addPolicy, agent, api, EVENTLOGS, evidenceFor, out, startLogHost, startService, trustSwtpmCa, verifyToken, type LogHost, type Service } from "./harness.js";

const LOG = "rhel8-gce-uefi.bin";
const OTHER_LOG = "windows-option-rom-sha1.bin";
const CLASS = "gce-n1";
const HOST = "web-01";

let dir: string;
let db: string;
let svc: Service;
let host: LogHost;
let bare: Swtpm;
let stateDir: string;
let baseline: unknown;
const logPath = join(EVENTLOGS, LOG);
const tpmArgs = () => ["--tpm", host.swtpm.tcti, "--state-dir", stateDir];
/** A client of its own for a swtpm (closed afterwards), as the agent opens one per command. */
async function withTpmClient<T>(t: Swtpm, fn: (tpm: TpmClient) => Promise<T>): Promise<T> {
  const tpm = new TpmClient(await openTransport(t.tcti));
  try {
    return await fn(tpm);
  } finally {
    await tpm.close();
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-e2e-"));
  db = join(dir, "tpmtrust.db");
  stateDir = join(dir, "agent");
  let b: Awaited<ReturnType<typeof cli>>;
  [svc, host, bare, b] = await Promise.all([
    startService(dir, db),
    startLogHost(LOG),
    startSwtpm(),
    cli(["policy", "baseline", "create", "--name", "gce-n1-baseline", "--from", logPath, "--out", join(dir, "baseline.json")]),
  ]);
  assert.equal(b.code, 0, out(b));
  await trustSwtpmCa(svc, host.swtpm);
  baseline = JSON.parse(readFileSync(join(dir, "baseline.json"), "utf8"));
  const p = await addPolicy(svc, "baseline", "gce-n1-baseline", CLASS, baseline);
  assert.equal(p.status, 201, JSON.stringify(p.body));
});

after(async () => {
  await Promise.all([svc?.close(), host?.close(), bare?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

test("identify > host.json → hosts add → register → attest → token verified with the JWKS", async () => {
  const id = await agent(["identify", "--tpm", host.swtpm.tcti]);
  assert.equal(id.code, 0, out(id));
  writeFileSync(join(dir, "host.json"), id.stdout);
  assert.equal(id.json().ekCertificates.length, 2);

  const add = await cli(["hosts", "add", join(dir, "host.json"), "--name", HOST, "--class", CLASS, "--db", db]);
  assert.equal(add.code, 0, out(add));

  const reg = await agent(["register", "--server", svc.url, ...tpmArgs(), "--json"]);
  assert.equal(reg.code, 0, out(reg));
  assert.deepEqual(reg.json().host, HOST);
  assert.equal(reg.json().akHandle, "0x81010003");
  const state = readState(stateDir);
  assert.equal((await host.tpm.run(ReadPublic, { objectHandle: 0x81010003 })).name.toString("hex"), state.akNameHex, "the bound AK is persistent at 0x81010003");
  const shown = await api(svc.url, "GET", `/v1/hosts/${HOST}`, undefined, svc.admin);
  assert.deepEqual(
    shown.body.aks.map((a: { nameHex: string }) => a.nameHex),
    [state.akNameHex],
  );

  const att = await agent(["attest", "--server", svc.url, ...tpmArgs(), "--eventlog", logPath, "--json"]);
  assert.equal(att.code, 0, out(att));
  const r = att.json();
  assert.equal(r.verdict, "pass");
  assert.equal(r.host, HOST);
  assert.equal(readToken(stateDir), r.token);
  const claims = await verifyToken(svc.url, r.token);
  assert.equal(claims.sub, HOST);
  assert.equal(claims.hwclass, CLASS);
  assert.equal(claims.verdict, "pass");
  assert.equal(claims.pcr_digest, r.pcrDigestHex);
  assert.ok(claims.exp! > claims.iat!);
  assert.deepEqual(
    claims.policies.map((p: { kind: string; name: string }) => [p.kind, p.name]),
    [["baseline", "gce-n1-baseline"]],
  );
});

test("a baseline learned from another log fails with the diff; the host's own baseline passes again", async () => {
  const other = await cli(["policy", "baseline", "create", "--name", "gce-n1-baseline", "--from", join(EVENTLOGS, OTHER_LOG)]);
  assert.equal(other.code, 0, out(other));
  assert.equal((await addPolicy(svc, "baseline", "gce-n1-baseline", CLASS, other.json())).status, 201);

  const att = await agent(["attest", "--server", svc.url, ...tpmArgs(), "--eventlog", logPath, "--json"]);
  assert.equal(att.code, 1, out(att));
  const r = att.json();
  assert.equal(r.verdict, "fail");
  assert.equal(r.code, "ERR_POLICY_FAILED");
  assert.equal(r.token, undefined);
  assert.equal(readToken(stateDir), undefined, "a failing verdict removes the stored token");
  const [policy] = r.diff;
  assert.equal(policy.kind, "baseline");
  assert.ok(policy.diffs.length > 0);
  for (const d of policy.diffs) {
    assert.ok(Number.isInteger(d.pcr) && d.pcr >= 0 && d.pcr <= 7, JSON.stringify(d));
    assert.equal(typeof d.meaning, "string");
    assert.equal(typeof d.description, "string");
  }
  const timeline = await api(svc.url, "GET", `/v1/hosts/${HOST}/attestations`, undefined, svc.admin);
  assert.equal(timeline.body.find((a: { id: string }) => a.id === r.attestationId)?.verdict, "fail");

  assert.equal((await addPolicy(svc, "baseline", "gce-n1-baseline", CLASS, baseline)).status, 201);
  const again = await attest(host.tpm, new ServiceClient({ url: svc.url }), { stateDir, eventLog: logPath, eventLogRequired: true });
  assert.equal(again.verdict, "pass", JSON.stringify(again));
});

test("continuous rounds name an unchanged log by SHA-256; a service that has not judged it (new policy version) gets the log itself", async () => {
  const bodies: Record<string, unknown>[] = [];
  class Recording extends ServiceClient {
    override post<T>(path: string, body: unknown): Promise<T> {
      if (path === "/v1/attestations") bodies.push(body as Record<string, unknown>);
      return super.post<T>(path, body);
    }
  }
  const service = new Recording({ url: svc.url });
  const passedLog: { sha256?: string } = {};
  const round = () => attest(host.tpm, service, { stateDir, eventLog: logPath, eventLogRequired: true, passedLog });
  const sha256 = createHash("sha256").update(readFileSync(logPath)).digest("hex");

  assert.equal((await round()).verdict, "pass");
  assert.equal(typeof bodies[0].eventLog, "string");
  assert.equal(passedLog.sha256, sha256);

  const byHash = await round();
  assert.equal(byHash.verdict, "pass", JSON.stringify(byHash));
  assert.equal(bodies.length, 2);
  assert.equal(bodies[1].eventLogSha256, sha256);
  assert.equal(bodies[1].eventLog, undefined);
  assert.equal((await verifyToken(svc.url, byHash.token!)).sub, HOST);

  // a new policy version: no judgement of this log under it yet
  assert.equal((await addPolicy(svc, "baseline", "gce-n1-baseline", CLASS, baseline)).status, 201);
  const resent = await round();
  assert.equal(resent.verdict, "pass", JSON.stringify(resent));
  assert.equal(bodies.length, 4);
  assert.equal(bodies[2].eventLogSha256, sha256);
  assert.equal(typeof bodies[3].eventLog, "string");
  assert.equal(bodies[3].nonceHex, bodies[2].nonceHex, "ERR_EVENTLOG_REQUIRED leaves the nonce unspent for the retry");
});

test("agent run attests every interval until SIGTERM, logging JSON lines to stderr", async () => {
  const before = (await api(svc.url, "GET", `/v1/hosts/${HOST}/attestations`, undefined, svc.admin)).body.length;
  const bin = fileURLToPath(new URL("../../bin/tpmtrust.js", import.meta.url));
  const child = spawn(process.execPath, [bin, "agent", "run", "--server", svc.url, ...tpmArgs(), "--eventlog", logPath, "--interval", "0.5"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    for (let i = 0; i < 600; i++) {
      if ((stderr.match(/"msg":"attested"/g) ?? []).length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    process.kill(child.pid!, "SIGTERM");
  }
  assert.equal(await exited, 0, stderr);
  const lines = stderr.trim().split("\n").map((l) => JSON.parse(l));
  const rounds = lines.filter((l) => l.msg === "attested");
  assert.ok(rounds.length >= 2, stderr);
  assert.ok(rounds.every((l) => l.verdict === "pass" && l.host === HOST));
  assert.equal(lines.at(-1).msg, "continuous attestation stopped");
  const after = (await api(svc.url, "GET", `/v1/hosts/${HOST}/attestations`, undefined, svc.admin)).body.length;
  assert.ok(after - before >= rounds.length, `${after} - ${before} recorded for ${rounds.length} rounds`);
});

test("TLS: the agent trusts the service's certificate through --ca-cert, and only then", async () => {
  const key = join(dir, "tls.key");
  const cert = join(dir, "tls.crt");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  const tls = await startService(dir, db, { admin: svc.admin, tls: { cert: readFileSync(cert), key: readFileSync(key) } });
  try {
    assert.match(tls.url, /^https:/);
    const ok = await agent(["attest", "--server", tls.url, "--ca-cert", cert, ...tpmArgs(), "--eventlog", logPath]);
    assert.equal(ok.code, 0, out(ok));
    assert.match(ok.stdout, new RegExp(`^pass host=${HOST}\ntoken ey`));
    await assert.rejects(attest(host.tpm, new ServiceClient({ url: tls.url }), { stateDir, eventLog: logPath }), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_UNREACHABLE");
  } finally {
    await tls.close();
  }
});

const problem = (a: { status: number; body: any }, status: number, code: string) => {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(a.body.code, code, JSON.stringify(a.body));
};

test("evidence negatives: replayed nonce, expired nonce, PCR mismatch, tampered log", async () => {
  const body = await evidenceFor(svc.url, host.tpm, stateDir, host.log);
  const first = await api(svc.url, "POST", "/v1/attestations", body);
  assert.equal(first.body.verdict, "pass", JSON.stringify(first.body));
  problem(await api(svc.url, "POST", "/v1/attestations", body), 422, "ERR_NONCE_REUSED");

  const shortLived = await startService(dir, db, { admin: svc.admin, attest: { nonceTtlMs: 1 } });
  try {
    const stale = await evidenceFor(shortLived.url, host.tpm, stateDir, host.log);
    await new Promise((r) => setTimeout(r, 20));
    problem(await api(svc.url, "POST", "/v1/attestations", stale), 422, "ERR_NONCE_EXPIRED");
  } finally {
    await shortLived.close();
  }

  const wrongPcrs = await evidenceFor(svc.url, host.tpm, stateDir, host.log);
  const bank = Object.keys(wrongPcrs.pcrs)[0];
  wrongPcrs.pcrs[bank]["0"] = "ff" + wrongPcrs.pcrs[bank]["0"].slice(2);
  const mismatch = await api(svc.url, "POST", "/v1/attestations", wrongPcrs);
  assert.equal(mismatch.status, 200, JSON.stringify(mismatch.body));
  assert.equal(mismatch.body.verdict, "fail");
  assert.equal(mismatch.body.code, "ERR_PCR_DIGEST_MISMATCH");

  // one sha256 digest of a PCR 4 event (the boot loader) flipped
  const tampered = Buffer.from(host.log);
  const ev = parseEventLog(host.log).events.find((e) => e.pcr === 4 && e.digests.sha256)!;
  const at = tampered.indexOf(ev.digests.sha256, ev.offset);
  tampered[at] ^= 0x01;
  writeFileSync(join(dir, "tampered.bin"), tampered);
  const t = await attest(host.tpm, new ServiceClient({ url: svc.url }), { stateDir, eventLog: join(dir, "tampered.bin"), eventLogRequired: true });
  assert.equal(t.verdict, "fail");
  assert.equal(t.code, "ERR_EVENTLOG_REPLAY_MISMATCH", JSON.stringify(t));
  const [d] = t.diff as { bank: string; pcr: number; record: number }[];
  assert.deepEqual([d.bank, d.pcr, d.record], ["sha256", 4, ev.index], "the diff names the bank, PCR and the tampered record");
});

test("who may do what: no token 401, auditor writing 403, an attestation token is no API token; denials audited", async () => {
  problem(await api(svc.url, "GET", "/v1/hosts"), 401, "ERR_UNAUTHENTICATED");
  const auditor = (await svc.server.store.adminTokens.create({ at: Date.now(), role: "auditor", label: "e2e" })).token;
  assert.equal((await api(svc.url, "GET", "/v1/hosts", undefined, auditor)).status, 200);
  problem(await addPolicy({ ...svc, admin: auditor }, "baseline", "x", CLASS, baseline), 403, "ERR_FORBIDDEN");
  problem(await api(svc.url, "DELETE", `/v1/hosts/${HOST}`, undefined, auditor), 403, "ERR_FORBIDDEN");
  const hostToken = (await attest(host.tpm, new ServiceClient({ url: svc.url }), { stateDir, eventLog: logPath })).token!;
  problem(await api(svc.url, "GET", "/v1/hosts", undefined, hostToken), 401, "ERR_UNAUTHENTICATED");
  const denied = (await api(svc.url, "GET", "/v1/audit?action=auth.denied&limit=100", undefined, svc.admin)).body.entries;
  assert.ok(denied.filter((e: { outcome: string }) => e.outcome === "denied").length >= 4, JSON.stringify(denied));
  assert.equal((await api(svc.url, "GET", "/v1/audit/verify", undefined, auditor)).body.ok, true);
});

test("activation: a wrong secret spends it (ERR_ACTIVATION_FAILED, then ERR_NOT_FOUND); an unrestricted AK is refused; an occupied AK handle too", async () => {
  await withEk(host.tpm, "rsa2048", async (ek) => {
    const ekPublic = tpm2bPublic(ek.publicArea).toString("base64");
    const ak = await createAk(host.tpm, ek, { type: "ecc" });
    try {
      const start = await api(svc.url, "POST", "/v1/activations", { ekPublic, akPublic: tpm2bPublic(ak.publicArea).toString("base64") });
      assert.equal(start.status, 201, JSON.stringify(start.body));
      problem(await api(svc.url, "POST", `/v1/activations/${start.body.activationId}`, { secret: randomBytes(32).toString("base64") }), 422, "ERR_ACTIVATION_FAILED");
      const blob = decodeTpm2bIdObject(Buffer.from(start.body.credentialBlob, "base64"));
      const seed = decodeTpm2bEncryptedSecret(Buffer.from(start.body.encryptedSecret, "base64"));
      const secret = await host.tpm.run(ActivateCredential, { activateHandle: ak.handle, keyHandle: ek.handle, credentialBlob: blob, secret: seed, keyAuth: await ekAuth(host.tpm, ek.public) });
      problem(await api(svc.url, "POST", `/v1/activations/${start.body.activationId}`, { secret: secret.toString("base64") }), 404, "ERR_NOT_FOUND");
    } finally {
      await host.tpm.run(FlushContext, { flushHandle: ak.handle });
    }
    const template = akTemplate({ type: "ecc" });
    template.objectAttributes &= ~TPMA_OBJECT.restricted;
    const unrestricted = await host.tpm.run(Create, { parentHandle: ek.handle, inPublic: template, auth: await ekAuth(host.tpm, ek.public) });
    problem(await api(svc.url, "POST", "/v1/activations", { ekPublic, akPublic: tpm2bPublic(unrestricted.publicArea).toString("base64") }), 422, "ERR_KEY_NOT_RESTRICTED");
  });
  // a persistent handle holding something else than an AK (here the EK) is refused before enrolling
  const starts = async () => (await api(svc.url, "GET", "/v1/audit?action=ak.activation.start&limit=1000", undefined, svc.admin)).body.entries.length;
  const before = await starts();
  await assert.rejects(activate(host.tpm, new ServiceClient({ url: svc.url }), { stateDir: join(dir, "conflict"), akHandle: 0x81010001 }), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_CONFLICT");
  assert.equal(await starts(), before);
});

test("EK trust at registration: v2 needs a trusted EK certificate, v1 an allow-listed EK; a v1 host is not judged by v2 policies", async () => {
  const bareTcti = ["--tpm", bare.tcti];
  const { identity } = await withTpmClient(bare, identify);
  problem(await api(svc.url, "POST", "/v1/hosts", { name: "lab-01", hardwareClass: CLASS, identity }, svc.admin), 422, "ERR_EK_CERT_REQUIRED");
  problem(await api(svc.url, "POST", "/v1/hosts", { name: "lab-01", hardwareClass: CLASS, policyVersion: "v1", identity }, svc.admin), 422, "ERR_EK_NOT_ALLOWLISTED");
  const hash = ekHash(decodeTpm2bPublic(Buffer.from(identity.ekPublics[0].public, "base64")));
  assert.equal((await api(svc.url, "POST", "/v1/trust/allowlist", { ekHash: hash.toUpperCase(), label: "lab" }, svc.admin)).status, 201);
  const added = await api(svc.url, "POST", "/v1/hosts", { name: "lab-01", hardwareClass: CLASS, policyVersion: "v1", identity }, svc.admin);
  assert.equal(added.status, 201, JSON.stringify(added.body));

  const labState = join(dir, "lab-agent");
  const reg = await withTpmClient(bare, (tpm) => activate(tpm, new ServiceClient({ url: svc.url }), { stateDir: labState, akHandle: null }));
  assert.equal(reg.host, "lab-01");
  assert.ok(reg.akPrivate && reg.akHandle === undefined, "the AK's blobs are kept in the state dir");
  const judged = await withTpmClient(bare, (tpm) => attest(tpm, new ServiceClient({ url: svc.url }), { stateDir: labState, eventLog: join(dir, "no-such-log"), eventLogRequired: false }));
  assert.equal(judged.verdict, "fail");
  assert.equal(judged.code, "ERR_POLICY_VERSION");

  assert.equal((await api(svc.url, "DELETE", `/v1/trust/allowlist/${hash}`, undefined, svc.admin)).status, 204);
  const again = await agent(["register", "--server", svc.url, ...bareTcti, "--state-dir", join(dir, "lab-agent-2"), "--ak-handle", "none"]);
  assert.equal(again.code, 1, out(again));
  assert.match(again.stderr, /ERR_EK_NOT_ALLOWLISTED/);
});

test("EK not trusted: without the manufacturer CA the v2 host cannot enrol an AK; no service is exit 2", async () => {
  const cas = await api(svc.url, "GET", "/v1/trust/cas", undefined, svc.admin);
  for (const c of cas.body) assert.equal((await api(svc.url, "DELETE", `/v1/trust/cas/${c.id}`, undefined, svc.admin)).status, 204);
  await assert.rejects(activate(host.tpm, new ServiceClient({ url: svc.url }), { stateDir: join(dir, "untrusted"), akHandle: null }), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_EK_NOT_TRUSTED");
  const down = await agent(["register", "--server", "http://127.0.0.1:1", "--tpm", host.swtpm.tcti, "--state-dir", join(dir, "down"), "--ak-handle", "none"]);
  assert.equal(down.code, 2, out(down));
  assert.match(down.stderr, /ERR_UNREACHABLE/);
});
