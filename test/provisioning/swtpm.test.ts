/**
 * DPS provisioning against real TPMs (swtpm) over real HTTP on 127.0.0.1:
 * - `tpmtrust device provision` (the CLI, tpmtrust's TPM client) with RSA and ECC P-256 EKs, and
 *   a group enrollment by EK certificate CA (swtpm_setup's local CA), on SQLite and PostgreSQL;
 * - an independent device made of tpm2-tools and curl only: if they can provision, the Azure
 *   device SDKs, which do the same TPM commands, can too.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BACKENDS, type Backend } from "../helpers/store.js";
import { cli } from "../helpers/cli.js";
import { API_VERSION, startDps, type DpsService } from "../helpers/dps.js";
import { startSwtpm, requireTool, type Swtpm } from "../helpers/swtpm.js";
import { tpm2, tpm2Raw } from "../helpers/tpm2tools.js";
import { provisionDevice, type ProvisionOptions } from "../../src/agent/dps-device.js";
import { ServiceClient } from "../../src/agent/http.js";
import { withTpm } from "../../src/agent/tpm.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-dps-swtpm-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = (name: string) => join(dir, `${++n}-${name}`);

/** The EK's TPM2B_PUBLIC as tpm2_createek writes it (persisted at 0x81010001 / 0x81010002). */
async function createEk(tpm: Swtpm, alg: "rsa" | "ecc"): Promise<string> {
  const out = file(`ek-${alg}.pub`);
  await tpm2(tpm, "tpm2_createek", ["-G", alg, "-c", alg === "rsa" ? "0x81010001" : "0x81010002", "-u", out]);
  return out;
}

/** Lowercase base32 of SHA-256 (coreutils' base32), '=' stripped: the DPS default registration id. */
function registrationIdOf(tpm2bFile: string): Promise<string> {
  const digest = createHash("sha256").update(readFileSync(tpm2bFile)).digest();
  return new Promise((resolve, reject) => {
    const child = execFile("base32", ["-w0"], (err, stdout) => (err ? reject(err) : resolve(stdout.trim().toLowerCase().replace(/=+$/, ""))));
    child.stdin!.end(digest);
  });
}

async function provisionCli(s: DpsService, tpm: Swtpm, extra: string[] = []) {
  const r = await cli(["device", "provision", "--id-scope", s.idScope, "--server", s.url, "--tpm", tpm.tcti, "--json", ...extra]);
  return { ...r, result: r.code === 0 ? r.json() : undefined };
}

for (const [name, make] of BACKENDS) {
  describe(`tpmtrust device provision on swtpm, ${name}`, () => {
    let backend: Backend;
    let s: DpsService;
    let db: string;
    before(async () => {
      backend = await make();
      db = await backend.newUrl();
      s = await startDps(db, { provisioning: { retryAfterSeconds: 0 } });
      const hub = await cli(["hubs", "add", "hub-1", "--hostname", "hub-1.azure-devices.example", "--weight", "2", "--db", db]);
      assert.equal(hub.code, 0, hub.stderr);
    });
    after(async () => {
      await s?.close();
      await backend?.close();
    });

    test("RSA EK, individual enrollment made with the CLI: assigned, the HMAC key persisted at --handle, re-provisioning", async () => {
      const tpm = await startSwtpm();
      try {
        const ek = await createEk(tpm, "rsa");
        const id = await registrationIdOf(ek);
        const add = await cli(["enrollments", "add", "--ek", ek, "--device-id", "sensor-1", "--twin", '{"tags":{"line":"A"}}', "--db", db, "--json"]);
        assert.equal(add.code, 0, add.stderr);
        assert.equal(add.json().registrationId, id, "the CLI defaults to the DPS registration id");
        const p = await provisionCli(s, tpm, ["--handle", "0x81000123"]);
        assert.equal(p.code, 0, p.stderr);
        assert.equal(p.result.registrationId, id);
        assert.equal(p.result.status, "assigned");
        assert.equal(p.result.keyHandle, 0x81000123);
        assert.equal(p.result.registrationState.tpm, undefined, "the key blob is not printed");
        assert.deepEqual([p.result.registrationState.assignedHub, p.result.registrationState.deviceId, p.result.registrationState.substatus], ["hub-1.azure-devices.example", "sensor-1", "initialAssignment"]);
        const persistent = await tpm2(tpm, "tpm2_getcap", ["handles-persistent"]);
        assert.match(persistent, /0x81000123/);
        assert.match(persistent, /0x81000001/, "the SRK was created and persisted");
        // the persisted key signs SAS tokens the service accepts (tpm2_hmac over sr + "\n" + se, then curl)
        const token = await tpm2ToolsSas(tpm, "0x81000123", s.idScope, id);
        const status = await curl("POST", `${s.url}/${s.idScope}/registrations/${id}?${API_VERSION}`, undefined, token);
        assert.equal(status.status, 200, JSON.stringify(status.json));
        assert.equal(status.json.deviceId, "sensor-1");

        const again = await cli(["device", "provision", "--id-scope", s.idScope, "--server", s.url, "--tpm", tpm.tcti]);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stdout, new RegExp(`^assigned registrationId=${id} hub=hub-1.azure-devices.example deviceId=sensor-1 substatus=reprovisionedToInitialAssignment keyHandle=0x81000100\\n$`));
        const rec = await s.admin("GET", `/v1/provisioning/registrations/${id}`);
        assert.deepEqual(rec.json.twin, { tags: { line: "A" } });
      } finally {
        await tpm.stop();
      }
    });

    test("group enrollment by EK certificate CA (swtpm_setup's local CA): a TPM registers without an individual enrollment", async () => {
      const tpm = await startSwtpm({ ekCerts: true });
      const group = (body: Record<string, unknown>) => s.admin("POST", "/v1/provisioning/enrollment-groups", body);
      const der = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64").toString("base64");
      try {
        const g = await group({ name: "swtpm-vendor", caCertificates: [der(tpm.ca!.rootPem)], intermediateCertificates: [der(tpm.ca!.intermediatePem)], reprovisionPolicy: "never" });
        assert.equal(g.status, 201, JSON.stringify(g.json));
        const p = await provisionLib(s, tpm);
        const rec = await s.admin("GET", `/v1/provisioning/registrations/${p.registrationId}`);
        assert.deepEqual(rec.json.enrollment, { kind: "group", name: "swtpm-vendor" });
        assert.equal(rec.json.status, "assigned");
        // a registration id other than the EK's default is refused for group members
        await assert.rejects(provisionLib(s, tpm, { registrationId: "chosen-by-device" }), /HTTP 404: no enrollment for chosen-by-device/);
        assert.equal((await s.admin("PATCH", "/v1/provisioning/enrollment-groups/swtpm-vendor", { enabled: false })).status, 200);
        await assert.rejects(provisionLib(s, tpm), (e: Error & { code?: string }) => e.code === "ERR_DISABLED" && /HTTP 403: enrollment group swtpm-vendor is disabled/.test(e.message));
        assert.equal((await s.admin("DELETE", "/v1/provisioning/enrollment-groups/swtpm-vendor")).status, 204);
        assert.equal((await s.admin("GET", `/v1/provisioning/registrations/${p.registrationId}`)).status, 404, "the group's records went with it");
        // without a group whose CA it chains to, the TPM is not admitted
        assert.equal((await group({ name: "other-vendor", caCertificates: [await otherCa()] })).status, 201);
        await assert.rejects(provisionLib(s, tpm), /HTTP 401: the EK certificate .* chains to no enrollment group's CA/);
        assert.equal((await s.admin("DELETE", "/v1/provisioning/enrollment-groups/other-vendor")).status, 204);
      } finally {
        await tpm.stop();
      }
    });
  });
}

/** A self-signed CA unrelated to any TPM, base64 DER. */
function otherCa(): Promise<string> {
  const out = file("other-ca.pem");
  return new Promise((resolve, reject) =>
    execFile("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", file("other-ca.key"), "-out", out, "-days", "2", "-subj", "/CN=other vendor EK CA"], (e) =>
      e ? reject(e) : resolve(Buffer.from(readFileSync(out, "utf8").replace(/-----[A-Z ]+-----|\s/g, ""), "base64").toString("base64")),
    ),
  );
}

/** tpmtrust's device flow in this process (the CLI runs the same function). */
function provisionLib(s: DpsService, tpm: Swtpm, o: Partial<ProvisionOptions> = {}) {
  return withTpm(tpm.tcti, (c) => provisionDevice(c, new ServiceClient({ url: s.url }), { idScope: s.idScope, ...o }));
}

test("ECC P-256 EK with `tpmtrust device provision --ek ecc` (tpmtrust only: DPS's SDK templates are RSA)", async () => {
  const s = await startDps(join(dir, "ecc.db"), { provisioning: { retryAfterSeconds: 0 } });
  const tpm = await startSwtpm();
  try {
    assert.equal((await s.admin("PUT", "/v1/provisioning/hubs/h", { hostname: "h.example" })).status, 200);
    const ek = await createEk(tpm, "ecc");
    const enrolled = await s.admin("POST", "/v1/provisioning/enrollments", { registrationId: "ecc-device", endorsementKey: readFileSync(ek).toString("base64") });
    assert.equal(enrolled.status, 201);
    const p = await provisionCli(s, tpm, ["--ek", "ecc", "--registration-id", "ecc-device"]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.result.registrationState.assignedHub, "h.example");
    // the RSA EK of the same TPM is not the enrolled key
    await assert.rejects(provisionLib(s, tpm, { registrationId: "ecc-device" }), /HTTP 401: the endorsement key is not the one enrolled/);
  } finally {
    await tpm.stop();
    await s.close();
  }
});

// ---- an independent device: tpm2-tools and curl only -------------------------------------------

interface Curl {
  status: number;
  json: any;
}

function curl(method: string, url: string, body?: unknown, authorization?: string): Promise<Curl> {
  requireTool("curl");
  const args = ["-sS", "-X", method, "-H", "content-type: application/json; charset=utf-8", "-w", "\n%{http_code}"];
  if (authorization) args.push("-H", `Authorization: ${authorization}`);
  if (body !== undefined) args.push("--data-binary", "@-");
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = execFile("curl", args, (err, stdout) => {
      if (err) return reject(err);
      const nl = stdout.lastIndexOf("\n");
      const text = stdout.slice(0, nl);
      resolve({ status: Number(stdout.slice(nl + 1)), json: text ? JSON.parse(text) : undefined });
    });
    child.stdin!.end(body === undefined ? "" : JSON.stringify(body));
  });
}

/** The C SDK's URL encoding of the scope (lowercase hex). */
const srOf = (idScope: string, id: string) => encodeURIComponent(`${idScope}/registrations/${id}`).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());

/** A SAS token whose HMAC tpm2_hmac computes with the key at (or in) `keyCtx`. */
async function tpm2ToolsSas(tpm: Swtpm, keyCtx: string, idScope: string, id: string): Promise<string> {
  const sr = srOf(idScope, id);
  const se = Math.floor(Date.now() / 1000) + 600;
  const msg = file("string-to-sign");
  writeFileSync(msg, `${sr}\n${se}`);
  const mac = await tpm2Raw(tpm, "tpm2_hmac", ["-c", keyCtx, "-g", "sha256", msg]);
  assert.equal(mac.length, 32);
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(mac.toString("base64"))}&se=${se}&skn=registration`;
}

/**
 * Splits an authenticationKey into its TPM2B parts by their u16 sizes (no tpmtrust code), then lets
 * the TPM do the rest: PolicySecret(EH) → ActivateCredential → Import → Load. Returns the loaded
 * key's context file.
 */
async function importWithTools(tpm: Swtpm, blob: Buffer): Promise<string> {
  const parts: Buffer[] = [];
  let off = 0;
  for (let i = 0; i < 5; i++) {
    const size = blob.readUInt16BE(off);
    parts.push(blob.subarray(off, off + 2 + size));
    off += 2 + size;
  }
  assert.deepEqual(blob.subarray(off), Buffer.from([0, 0]), "an empty TPM2B_DATA trailer");
  const [idObject, credSecret, duplicate, dupSeed, pub] = parts;
  const cred = file("credential.blob");
  writeFileSync(cred, Buffer.concat([Buffer.from("badcc0de00000001", "hex"), idObject, credSecret]));
  const session = file("session.ctx");
  const inner = file("inner.key");
  await tpm2(tpm, "tpm2_startauthsession", ["--policy-session", "-S", session], { flush: false });
  await tpm2(tpm, "tpm2_policysecret", ["-S", session, "-c", "e"], { flush: false });
  await tpm2(tpm, "tpm2_activatecredential", ["-c", "0x81000001", "-C", "0x81010001", "-P", `session:${session}`, "-i", cred, "-o", inner]);
  assert.equal(readFileSync(inner).length, 16, "the credential is the 16-byte inner wrap key");
  const [pubFile, dupFile, seedFile, priv, ctx] = [file("key.pub"), file("dup.priv"), file("dup.seed"), file("key.priv"), file("key.ctx")];
  writeFileSync(pubFile, pub);
  writeFileSync(dupFile, duplicate);
  writeFileSync(seedFile, dupSeed);
  await tpm2(tpm, "tpm2_import", ["-C", "0x81000001", "-u", pubFile, "-i", dupFile, "-s", seedFile, "-k", inner, "-r", priv]);
  await tpm2(tpm, "tpm2_load", ["-C", "0x81000001", "-u", pubFile, "-r", priv, "-c", ctx]);
  return ctx;
}

test("independent client: a swtpm device provisions with tpm2-tools and curl only", async () => {
  const s = await startDps(join(dir, "tools.db"), { provisioning: { retryAfterSeconds: 0 } });
  const tpm = await startSwtpm();
  try {
    assert.equal((await s.admin("PUT", "/v1/provisioning/hubs/hub-t", { hostname: "hub-t.azure-devices.example" })).status, 200);
    const ek = await createEk(tpm, "rsa");
    const srkCtx = file("srk.ctx");
    await tpm2(tpm, "tpm2_createprimary", ["-C", "o", "-g", "sha256", "-G", "rsa2048:null:aes128cfb", "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", srkCtx]);
    await tpm2(tpm, "tpm2_evictcontrol", ["-C", "o", "-c", srkCtx, "0x81000001"]);
    const srk = file("srk.pub");
    await tpm2(tpm, "tpm2_readpublic", ["-c", "0x81000001", "-o", srk]);
    const id = await registrationIdOf(ek);
    assert.equal((await s.admin("POST", "/v1/provisioning/enrollments", { registrationId: id, endorsementKey: readFileSync(ek).toString("base64") })).status, 201);

    const body = { registrationId: id, tpm: { endorsementKey: readFileSync(ek).toString("base64"), storageRootKey: readFileSync(srk).toString("base64") } };
    const url = `${s.url}/${s.idScope}/registrations/${id}/register?${API_VERSION}`;
    const challenge = await curl("PUT", url, body);
    assert.equal(challenge.status, 401);
    const keyCtx = await importWithTools(tpm, Buffer.from(challenge.json.authenticationKey, "base64"));
    const token = await tpm2ToolsSas(tpm, keyCtx, s.idScope, id);
    const accepted = await curl("PUT", url, body, token);
    assert.equal(accepted.status, 202, JSON.stringify(accepted.json));
    const op = await curl("GET", `${s.url}/${s.idScope}/registrations/${id}/operations/${accepted.json.operationId}?${API_VERSION}`, undefined, token);
    assert.equal(op.status, 200);
    assert.equal(op.json.status, "assigned");
    assert.equal(op.json.registrationState.assignedHub, "hub-t.azure-devices.example");
    assert.equal(op.json.registrationState.deviceId, id);

    // the assigned state's authenticationKey imports too, and is the same key: same HMAC over the same bytes
    const msg = file("probe");
    writeFileSync(msg, "probe");
    const first = await tpm2Raw(tpm, "tpm2_hmac", ["-c", keyCtx, "-g", "sha256", msg]);
    const second = await importWithTools(tpm, Buffer.from(op.json.registrationState.tpm.authenticationKey, "base64"));
    assert.deepEqual(await tpm2Raw(tpm, "tpm2_hmac", ["-c", second, "-g", "sha256", msg]), first);
  } finally {
    await tpm.stop();
    await s.close();
  }
});
