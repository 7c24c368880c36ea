/**
 * The DPS device registration API over real HTTP on 127.0.0.1, on SQLite and PostgreSQL, with
 * software TPMs (swtpm.test.ts proves real TPMs agree): the flow, every negative the issue names,
 * lifecycle, reprovisioning policies, allocation, audit, and device keys at rest.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pickHashed } from "../../src/provisioning/allocation.js";
import { BACKENDS, rawSql, type Backend } from "../helpers/store.js";
import { API_VERSION, assertDpsError, b64, enroll, provisionSoft, startDps, type DpsService } from "../helpers/dps.js";
import { sasToken, softDevice, softSrk, unwrapAuthenticationKey } from "../helpers/soft-device.js";
import { encodeTpm2bPublic } from "../../src/tpm/structures.js";

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

for (const [name, make] of BACKENDS) {
  describe(`DPS device API on ${name}`, () => {
    let backend: Backend;
    let s: DpsService;
    let dbUrl: string;
    before(async () => {
      backend = await make();
      dbUrl = await backend.newUrl();
      // every test calls from 127.0.0.1: the per-address limits are tested on their own services
      s = await startDps(dbUrl, { provisioning: { retryAfterSeconds: 0, sourceFailureLimit: 1000, challengeLimit: 1000 } });
      for (const [hub, weight] of [["hub-a", 1], ["hub-b", 1], ["hub-c", 0]] as const) {
        const r = await s.admin("PUT", `/v1/provisioning/hubs/${hub}`, { hostname: `${hub}.azure-devices.example`, weight });
        assert.equal(r.status, 200, JSON.stringify(r.json));
      }
    });
    after(async () => {
      await s?.close();
      await backend?.close();
    });

    test("happy path: 401 challenge, 202 assigning, operation assigned, status lookup; keys never leave the service in the clear", async () => {
      const d = softDevice();
      const twin = { tags: { site: "plant-7" }, properties: { desired: { telemetry: 30 } } };
      await enroll(s, d, { deviceId: "pump-17", initialTwin: twin, allocation: { policy: "static", hub: "hub-b" } });
      const path = `${d.registrationId}/register?${API_VERSION}`;
      const c = await s.device("PUT", path, d.body());
      assert.equal(c.status, 401);
      assert.deepEqual(Object.keys(c.json).sort(), ["authenticationKey", "keyName"]);
      assert.equal(Buffer.from(c.json.authenticationKey, "base64").length, 766);
      const key = d.unwrap(c.json.authenticationKey);
      const token = sasToken(key, s.idScope, d.registrationId, inAnHour(), "dotnet");
      const r = await s.device("PUT", path, d.body(), token);
      assert.equal(r.status, 202);
      assert.deepEqual(Object.keys(r.json).sort(), ["operationId", "status"]);
      assert.equal(r.headers.get("retry-after"), "0");
      const op = await s.device("GET", `${d.registrationId}/operations/${r.json.operationId}?${API_VERSION}`, undefined, token);
      assert.equal(op.status, 200);
      assert.equal(op.json.operationId, r.json.operationId);
      assert.equal(op.json.status, "assigned");
      const st = op.json.registrationState;
      assert.equal(st.registrationId, d.registrationId);
      assert.equal(st.assignedHub, "hub-b.azure-devices.example");
      assert.equal(st.deviceId, "pump-17");
      assert.equal(st.status, "assigned");
      assert.equal(st.substatus, "initialAssignment");
      assert.ok(Date.parse(st.createdDateTimeUtc) <= Date.parse(st.lastUpdatedDateTimeUtc));
      assert.match(st.etag, /^[0-9a-f-]{36}$/);
      // the SDKs import registrationState.tpm.authenticationKey: the same key, wrapped afresh
      assert.notEqual(st.tpm.authenticationKey, c.json.authenticationKey);
      assert.deepEqual(d.unwrap(st.tpm.authenticationKey), key);

      for (const body of [undefined, d.body()]) {
        const lookup = await s.device("POST", `${d.registrationId}?${API_VERSION}`, body, token);
        assert.equal(lookup.status, 200, JSON.stringify(lookup.json));
        assert.equal(lookup.json.assignedHub, "hub-b.azure-devices.example");
        assert.equal(lookup.json.etag, st.etag);
      }
      const empty = await fetch(`${s.url}/${s.idScope}/registrations/${d.registrationId}?${API_VERSION}`, { method: "POST", headers: { "content-type": "application/json; charset=utf-8", authorization: token }, body: "" });
      assert.equal(empty.status, 200);

      const rec = await s.admin("GET", `/v1/provisioning/registrations/${d.registrationId}`);
      assert.equal(rec.status, 200);
      assert.deepEqual([rec.json.status, rec.json.deviceId, rec.json.keyProven, rec.json.enrollment.kind], ["assigned", "pump-17", true, "individual"]);
      assert.deepEqual(rec.json.twin, twin);
      const keyHex = key.toString("hex");
      assert.ok(!JSON.stringify(rec.json).includes(keyHex));
      const rows = await rawSql(dbUrl, `select * from device_registrations where registration_id = '${d.registrationId}'`);
      assert.equal(rows.length, 1);
      assert.ok(!JSON.stringify(rows).includes(keyHex), "the device key is stored wrapped");
      const audit = await s.server.store.audit.list({ subject: d.registrationId, limit: 50 });
      assert.deepEqual(
        audit.map((e) => `${e.action}:${e.outcome}`),
        ["provisioning.enrollment.add:success", "provisioning.device.challenge:success", "provisioning.device.assign:success"],
      );
      assert.ok(!JSON.stringify(audit).includes(keyHex));
    });

    test("negatives: unknown registration id, EK mismatch, SRK that is no restricted decryption key, bad requests", async () => {
      const d = softDevice();
      assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, d.body()), 404, 404201, /no enrollment/);
      await enroll(s, d);
      const other = softDevice({ registrationId: d.registrationId });
      assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, other.body()), 401, 401002, /not the one enrolled/);
      const srk = softSrk().pub;
      for (const attrs of [srk.objectAttributes & ~0x10000, (srk.objectAttributes & ~0x20000) | 0x40000]) {
        const body = { ...d.body(), tpm: { ...d.body().tpm, storageRootKey: encodeTpm2bPublic({ ...srk, objectAttributes: attrs }).toString("base64") } };
        assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, body), 400, 400004, /storageRootKey must be a restricted decryption key/);
      }
      assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, d.body(), undefined, "0neFFFFFFFF"), 404, 404201, /unknown ID scope/);
      assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, { ...d.body(), registrationId: "someone-else" }), 400, 400004, /differs/);
      assertDpsError(await s.device("PUT", `${d.registrationId}/register`, d.body()), 400, 400004, /api-version/);
      assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, { registrationId: d.registrationId }), 400, 400004, /TPM attestation only/);
      assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, { ...d.body(), x509: {} }), 400, 400004);
      assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, { ...d.body(), tpm: { ...d.body().tpm, endorsementKey: "AAAA" } }), 400, 400004);
    });

    test("negatives: forged, expired and another device's SAS are 401; past 5 failures a forged SAS is 429 across instances, and the device's valid SAS still succeeds", async () => {
      const d = softDevice();
      const e = softDevice();
      await enroll(s, d);
      await enroll(s, e);
      const pe = await provisionSoft(s, e);
      const path = `${d.registrationId}/register?${API_VERSION}`;
      const c = await s.device("PUT", path, d.body());
      const key = d.unwrap(c.json.authenticationKey);
      const attempts: [string, RegExp][] = [
        [sasToken(Buffer.alloc(32, 7), s.idScope, d.registrationId, inAnHour()), /does not verify/],
        [sasToken(key, s.idScope, d.registrationId, Math.floor(Date.now() / 1000) - 5), /expired/],
        [pe.token, /is for .* not for this registration/],
        [sasToken(pe.key, s.idScope, d.registrationId, inAnHour()), /does not verify/],
        ["SharedAccessSignature sr=x", /needs sr, sig and se/],
      ];
      for (const [token, why] of attempts) assertDpsError(await s.device("PUT", path, d.body(), token), 401, 401002, why);
      // the limit (5 failures) is in the database: a second instance sharing it refuses a forged token too
      const twin = await startDps(dbUrl, { dir: s.dir, provisioning: { retryAfterSeconds: 0, sourceFailureLimit: 1000 } });
      try {
        const locked = await twin.device("PUT", path, d.body(), sasToken(Buffer.alloc(32, 8), s.idScope, d.registrationId, inAnHour()));
        assertDpsError(locked, 429, 429001, /too many failed attempts/);
        assert.ok(Number(locked.headers.get("retry-after")) > 0);
        // but never the device that holds its key
        const ok = await twin.device("PUT", path, d.body(), sasToken(key, s.idScope, d.registrationId, inAnHour()));
        assert.equal(ok.status, 202, JSON.stringify(ok.json));
      } finally {
        await twin.close();
      }
      const denied = (await s.server.store.audit.list({ subject: d.registrationId, action: "provisioning.device.register", limit: 10 })).filter((x) => x.outcome === "denied");
      assert.equal(denied.length, 5, "failures past the limit are not audited one by one");
      // another device is not affected
      const ok = await s.device("POST", `${e.registrationId}?${API_VERSION}`, undefined, pe.token);
      assert.equal(ok.status, 200);
    });

    test("failures from one client address: past its limit that address's forged SAS is 429 for every registration id; valid SAS from it and calls from other addresses go on", async () => {
      const t = await startDps(await backend.newUrl(), { provisioning: { retryAfterSeconds: 0, sourceFailureLimit: 3 } });
      try {
        const [d, e] = [softDevice(), softDevice()];
        await enroll(t, d);
        await enroll(t, e);
        const forged = (x: typeof d) => sasToken(Buffer.alloc(32, 9), t.idScope, x.registrationId, inAnHour());
        for (let i = 0; i < 3; i++) assertDpsError(await t.deviceFrom("127.0.0.2", "PUT", `${d.registrationId}/register?${API_VERSION}`, d.body(), forged(d)), 401, 401002);
        assertDpsError(await t.deviceFrom("127.0.0.2", "PUT", `${e.registrationId}/register?${API_VERSION}`, e.body(), forged(e)), 429, 429001, /too many failed attempts from 127\.0\.0\.2/);
        assertDpsError(await t.device("PUT", `${e.registrationId}/register?${API_VERSION}`, e.body(), forged(e)), 401, 401002);
        const c = await t.deviceFrom("127.0.0.2", "PUT", `${d.registrationId}/register?${API_VERSION}`, d.body());
        const token = sasToken(d.unwrap(c.json.authenticationKey), t.idScope, d.registrationId, inAnHour());
        assert.equal((await t.deviceFrom("127.0.0.2", "PUT", `${d.registrationId}/register?${API_VERSION}`, d.body(), token)).status, 202);
      } finally {
        await t.close();
      }
    });

    test("operation and status lookups need the device's SAS; unknown operation is 404", async () => {
      const d = softDevice();
      await enroll(s, d);
      const p = await provisionSoft(s, d);
      assertDpsError(await s.device("GET", `${d.registrationId}/operations/${p.operationId}?${API_VERSION}`), 401, 401002, /needs Authorization/);
      assertDpsError(await s.device("GET", `${d.registrationId}/operations/nope?${API_VERSION}`, undefined, p.token), 404, 404201, /no operation/);
      assertDpsError(await s.device("POST", `${d.registrationId}?${API_VERSION}`, undefined, sasToken(Buffer.alloc(32), s.idScope, d.registrationId, inAnHour())), 401, 401002);
      const stranger = softDevice();
      assertDpsError(await s.device("POST", `${stranger.registrationId}?${API_VERSION}`, undefined, p.token), 404, 404201);
    });

    test("challenges per client address: past the limit that address gets 429 (retry-after), audited once; other addresses and the device's key are unaffected", async () => {
      const t = await startDps(await backend.newUrl(), { provisioning: { retryAfterSeconds: 0, challengeLimit: 3 } });
      try {
        const d = softDevice();
        await enroll(t, d);
        const path = `${d.registrationId}/register?${API_VERSION}`;
        for (let i = 0; i < 3; i++) assert.equal((await t.deviceFrom("127.0.0.2", "PUT", path, d.body())).status, 401);
        for (let i = 0; i < 2; i++) {
          const refused = await t.deviceFrom("127.0.0.2", "PUT", path, d.body());
          assertDpsError(refused, 429, 429001, /^more than 3 challenges from 127\.0\.0\.2; retry after 900 s$/);
          assert.equal(refused.headers.get("retry-after"), "900");
        }
        const denied = (await t.server.store.audit.list({ subject: d.registrationId, action: "provisioning.device.challenge", limit: 20 })).filter((x) => x.outcome === "denied");
        assert.deepEqual(denied.map((x) => x.details), [{ code: "ERR_TOO_MANY_ATTEMPTS", challenges: 4, source: "127.0.0.2" }]);
        // from its own address the device gets its challenge, and its SAS is accepted (202)
        await provisionSoft(t, d);
      } finally {
        await t.close();
      }
    });

    test("a challenge cannot invalidate another in flight: an anonymous challenge for the device's EK (with another SRK, or its own) between the device's challenge and its SAS changes nothing", async () => {
      const d = softDevice();
      await enroll(s, d);
      const path = `${d.registrationId}/register?${API_VERSION}`;
      const c = await s.device("PUT", path, d.body());
      const key = d.unwrap(c.json.authenticationKey);
      const intruder = { ...d.body(), tpm: { ...d.body().tpm, storageRootKey: encodeTpm2bPublic(softSrk().pub).toString("base64") } };
      assert.equal((await s.deviceFrom("127.0.0.3", "PUT", path, intruder)).status, 401);
      const replayed = await s.deviceFrom("127.0.0.3", "PUT", path, d.body());
      assert.equal(replayed.status, 401);
      assert.notEqual(replayed.json.authenticationKey, c.json.authenticationKey, "fresh seeds each time");
      assert.ok(d.unwrap(replayed.json.authenticationKey).equals(key), "the same key for the same TPM");
      const r = await s.device("PUT", path, d.body(), sasToken(key, s.idScope, d.registrationId, inAnHour()));
      assert.equal(r.status, 202, JSON.stringify(r.json));
    });

    test("lifecycle: disabled enrollment is 403, re-enabled works; deleted enrollment removes the record and the device gets 404", async () => {
      const d = softDevice();
      await enroll(s, d, { enabled: false });
      const path = `${d.registrationId}/register?${API_VERSION}`;
      assertDpsError(await s.device("PUT", path, d.body()), 403, 403001, /disabled/);
      assert.equal((await s.admin("PATCH", `/v1/provisioning/enrollments/${d.registrationId}`, { enabled: true })).status, 200);
      const p = await provisionSoft(s, d);
      assert.equal((await s.admin("PATCH", `/v1/provisioning/enrollments/${d.registrationId}`, { enabled: false })).status, 200);
      assertDpsError(await s.device("POST", `${d.registrationId}?${API_VERSION}`, undefined, p.token), 403, 403001, /disabled/);
      assertDpsError(await s.device("PUT", path, d.body(), p.token), 403, 403001);
      assert.equal((await s.admin("DELETE", `/v1/provisioning/enrollments/${d.registrationId}`)).status, 204);
      assert.equal((await s.admin("GET", `/v1/provisioning/registrations/${d.registrationId}`)).status, 404);
      assertDpsError(await s.device("PUT", path, d.body()), 404, 404201);
      assertDpsError(await s.device("POST", `${d.registrationId}?${API_VERSION}`, undefined, p.token), 404, 404201);
      const audit = (await s.server.store.audit.list({ subject: d.registrationId, limit: 50 })).map((e) => `${e.action}:${e.outcome}`);
      assert.ok(audit.includes("provisioning.enrollment.remove:success"));
      assert.ok(audit.includes("provisioning.device.challenge:denied"));
    });

    test("re-provisioning per policy: migrate moves with the twin, reset restores the initial twin, never stays; deleting the record restarts", async () => {
      const expect = async (policy: string, hubAfter: string, substatus: string, tag: number) => {
        const d = softDevice();
        await enroll(s, d, { initialTwin: { tags: { v: 1 } }, allocation: { policy: "static", hub: "hub-a" }, reprovisionPolicy: policy });
        const first = await provisionSoft(s, d);
        assert.equal(first.result.registrationState.substatus, "initialAssignment");
        const same = await provisionSoft(s, d);
        assert.equal(same.result.registrationState.substatus, "reprovisionedToInitialAssignment");
        const upd = await s.admin("PATCH", `/v1/provisioning/enrollments/${d.registrationId}`, { allocation: { policy: "static", hub: "hub-b" }, initialTwin: { tags: { v: 2 } } });
        assert.equal(upd.status, 200);
        const again = await provisionSoft(s, d);
        assert.equal(again.result.registrationState.assignedHub, `${hubAfter}.azure-devices.example`, policy);
        assert.equal(again.result.registrationState.substatus, substatus, policy);
        const rec = await s.admin("GET", `/v1/provisioning/registrations/${d.registrationId}`);
        assert.deepEqual(rec.json.twin, { tags: { v: tag } }, policy);
        return d;
      };
      await expect("reprovision-and-migrate", "hub-b", "deviceDataMigrated", 1);
      await expect("reprovision-and-reset", "hub-b", "deviceDataReset", 2);
      const d = await expect("never", "hub-a", "reprovisionedToInitialAssignment", 1);
      const list = await s.admin("GET", "/v1/provisioning/registrations");
      assert.ok(list.json.some((r: { registrationId: string }) => r.registrationId === d.registrationId));
      assert.equal((await s.admin("DELETE", `/v1/provisioning/registrations/${d.registrationId}`)).status, 204);
      const fresh = await provisionSoft(s, d);
      assert.equal(fresh.result.registrationState.substatus, "initialAssignment");
      assert.equal(fresh.result.registrationState.assignedHub, "hub-b.azure-devices.example");
    });

    test("allocation: hashed by registration id over weighted hubs; custom webhook (signed body, twin, payload, failures, timeout); no hub", async () => {
      const hubs = (await s.admin("GET", "/v1/provisioning/hubs")).json;
      const d = softDevice();
      await enroll(s, d);
      const p = await provisionSoft(s, d);
      assert.equal(p.result.registrationState.assignedHub, pickHashed(d.registrationId, hubs)!.hostname);
      assert.notEqual(p.result.registrationState.assignedHub, "hub-c.azure-devices.example");

      const secret = "a-webhook-secret-of-32-characters";
      const seen: { signature?: string; body: any }[] = [];
      let mode: "ok" | "fail" | "slow" | "unknown-hub" = "ok";
      const hook: Server = createServer((req, res) => {
        let raw = "";
        req.on("data", (c) => (raw += c));
        req.on("end", () => {
          seen.push({ signature: req.headers["x-tpmtrust-signature"] as string, body: JSON.parse(raw) });
          assert.equal(req.headers["x-tpmtrust-signature"], `sha256=${createHmac("sha256", secret).update(raw).digest("hex")}`);
          if (mode === "fail") return res.writeHead(500).end();
          const answer = JSON.stringify({ iotHubHostName: mode === "unknown-hub" ? "elsewhere.example" : "hub-c.azure-devices.example", initialTwin: { tags: { from: "webhook" } }, payload: { hello: "device" } });
          setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(answer), mode === "slow" ? 1000 : 0);
        });
      });
      await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
      try {
        const url = `http://127.0.0.1:${(hook.address() as { port: number }).port}/allocate`;
        const c = softDevice();
        await enroll(s, c, { allocation: { policy: "custom", webhook: { url, secret, timeoutMs: 300 } } });
        const shown = await s.admin("GET", `/v1/provisioning/enrollments/${c.registrationId}`);
        assert.equal(shown.json.allocation.webhook.secret, "(set)", "the secret is not shown");
        const ok = await provisionSoft(s, c, { payload: { model: "x1" } });
        const st = ok.result.registrationState;
        assert.equal(st.assignedHub, "hub-c.azure-devices.example");
        assert.deepEqual(st.payload, { hello: "device" });
        assert.deepEqual((await s.admin("GET", `/v1/provisioning/registrations/${c.registrationId}`)).json.twin, { tags: { from: "webhook" } });
        const req = seen.at(-1)!.body;
        assert.equal(req.individualEnrollment.registrationId, c.registrationId);
        assert.equal(req.deviceRuntimeContext.registrationId, c.registrationId);
        assert.deepEqual(req.deviceRuntimeContext.payload, { model: "x1" });
        assert.equal(req.deviceRuntimeContext.tpm.endorsementKey, b64(c.ek));
        assert.deepEqual([...req.linkedHubs].sort(), hubs.map((h: { hostname: string }) => h.hostname).sort());
        for (const [m, why] of [["fail", /HTTP 500/], ["slow", /within 300 ms/], ["unknown-hub", /not a linked hub/]] as const) {
          mode = m;
          const f = await provisionSoft(s, c);
          assert.equal(f.result.status, "failed", m);
          assert.equal(f.result.registrationState.errorCode, 424001);
          assert.match(f.result.registrationState.errorMessage, why);
          assert.equal(f.result.registrationState.assignedHub, undefined);
        }
      } finally {
        hook.close();
      }
      const n = softDevice();
      await enroll(s, n, { allocation: { policy: "hashed", hubs: ["hub-c"] } });
      const none = await provisionSoft(s, n);
      assert.equal(none.result.status, "failed");
      assert.equal(none.result.registrationState.errorCode, 400208);
    });

    test("device keys survive a restart with the same key file; another key file is a configuration error (500), not a wrong device", async () => {
      const d = softDevice();
      await enroll(s, d);
      const p = await provisionSoft(s, d);
      const same = await startDps(dbUrl, { dir: s.dir });
      try {
        assert.equal((await same.device("POST", `${d.registrationId}?${API_VERSION}`, undefined, p.token)).status, 200);
      } finally {
        await same.close();
      }
      const otherKey = join(s.dir, "other-key");
      writeFileSync(otherKey, "ab".repeat(32) + "\n", { mode: 0o600 });
      const other = await startDps(dbUrl, { dir: s.dir, provisioningKeyFile: otherKey });
      try {
        assertDpsError(await other.device("POST", `${d.registrationId}?${API_VERSION}`, undefined, p.token), 500, 500000, /^internal error$/);
      } finally {
        await other.close();
      }
    });
  });
}

test("admin API: problem+json validation, auditor reads but may not write, conflicts, ID scope", async () => {
  const s = await startDps(":memory:");
  try {
    const d = softDevice();
    await enroll(s, d);
    const dup = await s.admin("POST", "/v1/provisioning/enrollments", { registrationId: d.registrationId, endorsementKey: b64(d.ek) });
    assert.equal(dup.status, 409);
    assert.equal(dup.headers.get("content-type"), "application/problem+json; charset=utf-8");
    assert.equal(dup.json.code, "ERR_CONFLICT");
    const bad = await s.admin("POST", "/v1/provisioning/enrollments", { registrationId: "x", endorsementKey: b64(d.ek), allocation: { policy: "lowest-latency" } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, "ERR_VALIDATION");
    const srkAsEk = await s.admin("POST", "/v1/provisioning/enrollments", { registrationId: "y", endorsementKey: b64({ ...d.ek, objectAttributes: 0x00040072 }) });
    assert.equal(srkAsEk.json.code, "ERR_KEY_NOT_RESTRICTED");
    const auditor = (await s.server.store.adminTokens.create({ at: Date.now(), role: "auditor", label: "t" })).token;
    assert.equal((await s.admin("GET", "/v1/provisioning/enrollments", undefined, auditor)).status, 200);
    assert.equal((await s.admin("DELETE", `/v1/provisioning/enrollments/${d.registrationId}`, undefined, auditor)).status, 403);
    assert.equal((await fetch(`${s.url}/v1/provisioning/enrollments`)).status, 401);
    assert.equal((await s.admin("GET", "/v1/provisioning/settings")).json.idScope, s.idScope);
    assert.equal((await s.admin("PUT", "/v1/provisioning/settings", { idScope: "0ne00ABC123" })).json.idScope, "0ne00ABC123");
    assert.equal((await s.admin("PUT", "/v1/provisioning/settings", { idScope: "a/b" })).status, 400);
    // devices address the new scope; the old one is unknown
    assertDpsError(await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, d.body()), 404, 404201, /unknown ID scope/);
    assert.equal((await s.device("PUT", `${d.registrationId}/register?${API_VERSION}`, d.body(), undefined, "0ne00abc123")).status, 401);
    const openapi = await (await fetch(`${s.url}/openapi.json`)).json();
    assert.ok(openapi.paths["/{idScope}/registrations/{registrationId}/register"]);
    assert.ok(openapi.paths["/v1/provisioning/enrollment-groups"]);
  } finally {
    await s.close();
  }
});

test("ECC P-256 EK: the flow works (DPS itself is RSA-only)", async () => {
  const s = await startDps(":memory:");
  try {
    await s.admin("PUT", "/v1/provisioning/hubs/h", { hostname: "h.example" });
    const d = softDevice({ ek: "ecc" });
    await enroll(s, d);
    const p = await provisionSoft(s, d);
    assert.equal(p.result.registrationState.assignedHub, "h.example");
    assert.deepEqual(unwrapAuthenticationKey(Buffer.from(p.result.registrationState.tpm.authenticationKey, "base64"), d.ek, d.ekPriv, d.srk, d.srkPriv), p.key);
  } finally {
    await s.close();
  }
});
