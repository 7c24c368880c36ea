/**
 * The agent against two service instances sharing one real PostgreSQL: nonces, activations, policies
 * and token signing keys live in the database, so a challenge from one instance is answered at the
 * other, a nonce used at one is spent at both, and either JWKS verifies the token.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activate, attest, identify, readState, ServiceClient } from "../../src/agent/index.js";
import { learnBaseline } from "../../src/policy/index.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { cli } from "../helpers/cli.js";
import { startPostgres, type PgCluster } from "../helpers/postgres.js";
import { addPolicy, agent, api, EVENTLOGS, evidenceFor, out, startLogHost, startService, trustSwtpmCa, verifyToken, type LogHost, type Service } from "./harness.js";
import { ReadPublic } from "../../src/tpm/commands/index.js";

const LOG = "rhel8-gce-uefi.bin";
const CLASS = "gce-n2";
const HOST = "db-01";

let dir: string;
let pg: PgCluster;
let a: Service;
let b: Service;
let host: LogHost;
let stateDir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-e2e-pg-"));
  stateDir = join(dir, "agent");
  [pg, host] = await Promise.all([startPostgres(), startLogHost(LOG)]);
  a = await startService(dir, pg.url);
  b = await startService(dir, pg.url, { admin: a.admin });
  await trustSwtpmCa(b, host.swtpm);
  const p = await addPolicy(b, "baseline", "gce-n2-baseline", CLASS, learnBaseline("gce-n2-baseline", [parseEventLog(host.log)], [0, 1, 2, 3, 4, 5, 6, 7]));
  assert.equal(p.status, 201, JSON.stringify(p.body));
});

after(async () => {
  await Promise.all([a?.close(), b?.close(), host?.close()]);
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("PostgreSQL, two instances: hosts add --db postgres://, register at one, nonce from one and quote to the other, JWKS of both, re-registration", async () => {
  const { identity } = await identify(host.tpm);
  writeFileSync(join(dir, "host.json"), JSON.stringify(identity));
  const add = await cli(["hosts", "add", join(dir, "host.json"), "--name", HOST, "--class", CLASS, "--db", pg.url]);
  assert.equal(add.code, 0, out(add));

  const reg = await agent(["register", "--server", a.url, "--tpm", host.swtpm.tcti, "--state-dir", stateDir, "--ak-alg", "ecc"]);
  assert.equal(reg.code, 0, out(reg));

  for (const [from, to] of [
    [a, b],
    [b, a],
  ]) {
    const body = await evidenceFor(from.url, host.tpm, stateDir, host.log);
    const r = await api(to.url, "POST", "/v1/attestations", body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.verdict, "pass", JSON.stringify(r.body));
    for (const s of [a, b]) assert.equal((await verifyToken(s.url, r.body.token)).sub, HOST);
    const replay = await api(from.url, "POST", "/v1/attestations", body);
    assert.equal(replay.status, 422);
    assert.equal(replay.body.code, "ERR_NONCE_REUSED", "the nonce the other instance accepted is spent here too");
  }

  // registering again (at the other instance, RSA this time) replaces the AK at its persistent handle
  const first = readState(stateDir);
  const again = await activate(host.tpm, new ServiceClient({ url: b.url }), { stateDir, akAlg: "rsa" });
  assert.notEqual(again.akNameHex, first.akNameHex);
  assert.equal(again.akHandle, first.akHandle);
  assert.equal((await host.tpm.run(ReadPublic, { objectHandle: again.akHandle! })).name.toString("hex"), again.akNameHex);
  const viaAgent = await attest(host.tpm, new ServiceClient({ url: b.url }), { stateDir, eventLog: join(EVENTLOGS, LOG), eventLogRequired: true });
  assert.equal(viaAgent.verdict, "pass");
  for (const s of [a, b]) {
    const h = await api(s.url, "GET", `/v1/hosts/${HOST}`, undefined, s.admin);
    assert.equal(h.body.health, "healthy", JSON.stringify(h.body));
  }
  const timeline = await api(a.url, "GET", `/v1/hosts/${HOST}/attestations`, undefined, a.admin);
  assert.equal(timeline.body.filter((x: { verdict: string }) => x.verdict === "pass").length, 3);
});
