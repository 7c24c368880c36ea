/** The operator CLI for provisioning on a SQLite database: hubs, enrollments, enrollment groups, registrations, ID scope. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openStore } from "../../src/store/index.js";
import { defaultRegistrationId } from "../../src/provisioning/registration-id.js";
import { encodeTpm2bPublic } from "../../src/tpm/structures.js";
import { cli } from "../helpers/cli.js";
import { softDevice } from "../helpers/soft-device.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-dps-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const db = join(dir, "t.db");
const f = (name: string, data: string | Buffer) => (writeFileSync(join(dir, name), data), join(dir, name));
const IFX_ROOT = fileURLToPath(new URL("../fixtures/manufacturer-roots/keylime-tpm_cert_store/IFX1.pem", import.meta.url));
const IFX_INTERMEDIATE = fileURLToPath(new URL("../fixtures/manufacturer-roots/infineon-intermediates/IFX_RSA_035.pem", import.meta.url));

test("hubs, enrollments, enrollment groups, registrations and the ID scope from the command line, audited as cli", async () => {
  const hub = await cli(["hubs", "add", "h1", "--hostname", "H1.azure-devices.example", "--weight", "3", "--db", db, "--json"]);
  assert.equal(hub.code, 0, hub.stderr);
  assert.deepEqual([hub.json().hostname, hub.json().weight], ["h1.azure-devices.example", 3]);
  assert.equal((await cli(["hubs", "add", "h2", "--hostname", "h2.example", "--weight", "5000", "--db", db])).code, 2);
  assert.equal((await cli(["hubs", "add", "h2", "--hostname", "not a host", "--db", db])).code, 2);

  const d = softDevice();
  const ekBase64 = f("ek.b64", encodeTpm2bPublic(d.ek).toString("base64") + "\n");
  const secret = f("secret", "webhook-secret-0123456789\n");
  const add = await cli([
    ...["enrollments", "add", "--ek", ekBase64, "--allocation", "custom", "--webhook-url", "https://alloc.example/hook", "--webhook-secret-file", secret],
    ...["--reprovision", "never", "--twin", '{"tags":{"room":"b12"}}', "--db", db, "--json"],
  ]);
  assert.equal(add.code, 0, add.stderr);
  const e = add.json();
  assert.equal(e.registrationId, defaultRegistrationId(d.ek));
  assert.deepEqual(e.allocation, { policy: "custom", webhook: { url: "https://alloc.example/hook", secret: "(set)" } });
  assert.deepEqual(e.initialTwin, { tags: { room: "b12" } });
  assert.equal(e.reprovisionPolicy, "never");
  const dup = await cli(["enrollments", "add", e.registrationId, "--ek", ekBase64, "--db", db]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /ERR_CONFLICT/);
  const binary = f("ek.bin", encodeTpm2bPublic(softDevice().ek));
  assert.equal((await cli(["enrollments", "add", "second", "--ek", binary, "--allocation", "static", "--hub", "h1", "--disabled", "--db", db])).code, 0);

  const list = await cli(["enrollments", "list", "--db", db]);
  assert.equal(list.code, 0);
  assert.match(list.stdout, new RegExp(`^${e.registrationId}\\tenabled\\tcustom\\tnever\\t-$`, "m"));
  assert.match(list.stdout, /^second\tdisabled\tstatic\treprovision-and-migrate\t-$/m);
  const upd = await cli(["enrollments", "update", "second", "--enabled", "--device-id", "pump-9", "--twin", "none", "--db", db, "--json"]);
  assert.equal(upd.code, 0, upd.stderr);
  assert.deepEqual([upd.json().enabled, upd.json().deviceId, upd.json().initialTwin, upd.json().allocation], [true, "pump-9", null, { policy: "static", hub: "h1" }]);
  const nothing = await cli(["enrollments", "update", "second", "--db", db]);
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /ERR_USAGE: nothing to change/);
  const show = await cli(["enrollments", "show", "second", "--db", db]);
  assert.equal(JSON.parse(show.stdout).deviceId, "pump-9");
  assert.equal((await cli(["enrollments", "remove", "second", "--db", db])).code, 0);
  const gone = await cli(["enrollments", "remove", "second", "--db", db]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /ERR_NOT_FOUND/);

  const g = await cli(["enrollment-groups", "add", "infineon", "--ca", IFX_ROOT, "--intermediate", IFX_INTERMEDIATE, "--db", db, "--json"]);
  assert.equal(g.code, 0, g.stderr);
  assert.equal(g.json().caCertificates.length, 1);
  assert.equal(g.json().intermediateCertificates.length, 1);
  const groups = await cli(["enrollment-groups", "list", "--db", db]);
  assert.match(groups.stdout, /^infineon\tenabled\thashed\treprovision-and-migrate\t.*Infineon/m);
  assert.equal((await cli(["enrollment-groups", "add", "bad", "--ca", binary, "--db", db])).code, 2, "an EK is no certificate");

  const regs = await cli(["registrations", "show", "nobody", "--db", db]);
  assert.equal(regs.code, 1);
  assert.match(regs.stderr, /ERR_NOT_FOUND: no registration record for nobody/);

  assert.equal((await cli(["provisioning", "scope", "--set", "0ne00ABC123", "--db", db])).stdout, "0ne00ABC123\n");
  assert.equal((await cli(["provisioning", "scope", "--db", db])).stdout, "0ne00ABC123\n");

  const store = await openStore(db);
  try {
    const actions = (await store.audit.list({ actor: "cli", limit: 100 })).map((a) => a.action);
    for (const a of ["provisioning.hub.add", "provisioning.enrollment.add", "provisioning.enrollment.update", "provisioning.enrollment.remove", "provisioning.group.add", "provisioning.scope.set"]) {
      assert.ok(actions.includes(a), `${a} audited`);
    }
    assert.ok(!JSON.stringify(await store.audit.list({ limit: 100 })).includes("webhook-secret-0123456789"), "the webhook secret is not audited");
  } finally {
    await store.close();
  }
});
