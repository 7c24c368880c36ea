/**
 * Remote administration of the CA (ca init, templates, certificates, CRL, exchange certificate) and
 * of device provisioning (hubs, enrollments, enrollment groups, registrations, ID scope): the CLI with
 * --server from a clean workstation folder (no database, HSM or key-server environment) against the
 * service over real HTTP on 127.0.0.1; each effect is checked through the API. Attack: a wrong token
 * (401), the auditor's token on a write and an admin outside the CA group (403). `serve` runs the
 * service itself and refuses --server.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeTpm2bPublic } from "../../src/tpm/structures.js";
import { cli } from "../helpers/cli.js";
import { softDevice } from "../helpers/soft-device.js";
import { CLEAN_ENV, ok, refused, remoteAdmin, type RemoteAdmin } from "../helpers/remote-admin.js";

const IFX_ROOT = fileURLToPath(new URL("../fixtures/manufacturer-roots/keylime-tpm_cert_store/IFX1.pem", import.meta.url));
const IFX_INTERMEDIATE = fileURLToPath(new URL("../fixtures/manufacturer-roots/infineon-intermediates/IFX_RSA_035.pem", import.meta.url));

let r: RemoteAdmin;
before(async () => {
  r = await remoteAdmin("tpmtrust-remote-ca-");
});
after(() => r?.close());

test("ca: init, templates, certificates, CRL and the exchange certificate from a workstation", async () => {
  const { remote, get, tokens, svc } = r;
  const [keyDir, init] = await Promise.all([remote(["ca", "init", "--key-dir", "keys"]), remote(["ca", "init", "--org", "Example", "--json"])]);
  refused(keyDir, "ERR_USAGE", 2);
  assert.match(ok(init).json().issuing.subject, /O=Example/);
  assert.match(await fetch(`${svc.url}/v1/ca/certs/ca`).then((x) => x.text()), /BEGIN CERTIFICATE/);

  const crlFile = join(r.dir, "inputs", "ca.crl");
  const [again, template, certs, revoke, crl, xchg] = await Promise.all([
    remote(["ca", "init"]),
    remote(["ca", "templates", "add", "--name", "web", "--validity-days", "30", "--attestation", "required", "--json"]),
    remote(["ca", "certs", "list", "--json"], tokens.carol),
    remote(["ca", "certs", "revoke", "0badc0de"]),
    remote(["ca", "crl", "--out", crlFile]),
    remote(["ca", "xchg"]),
  ]);
  refused(again, "ERR_CONFLICT", 1);
  assert.equal(ok(template).json().name, "web");
  assert.equal(((await get("/v1/ca/templates/web")) as { validityDays: number }).validityDays, 30);
  assert.deepEqual(ok(certs).json(), []);
  refused(revoke, "ERR_NOT_FOUND", 1);
  assert.match(ok(crl).stdout, /^CRL \d+ \(next update .*\) -> /);
  assert.equal(readFileSync(crlFile)[0], 0x30, "a DER CRL");
  assert.equal((ok(xchg).stdout.match(/BEGIN CERTIFICATE/g) ?? []).length, 3, "exchange certificate, issuing CA, root");

  const [list, show] = await Promise.all([remote(["ca", "templates", "list"], tokens.carol), remote(["ca", "templates", "show", "web"])]);
  assert.match(ok(list).stdout, /^web\trequired\t/m);
  assert.equal(JSON.parse(ok(show).stdout).name, "web");
  ok(await remote(["ca", "templates", "remove", "web"]));
  assert.deepEqual(await get("/v1/ca/templates"), []);
  assert.deepEqual(readdirSync(r.workstation), []);
});

test("provisioning: hubs, enrollments, enrollment groups, registrations and the ID scope from a workstation", async () => {
  const { remote, get, input, tokens } = r;
  const ek = input("ek.b64", encodeTpm2bPublic(softDevice().ek).toString("base64") + "\n");
  const [hub, badHub, group, scope] = await Promise.all([
    remote(["hubs", "add", "h1", "--hostname", "h1.azure-devices.example", "--weight", "3"]),
    remote(["hubs", "add", "h2", "--hostname", "not a host"]),
    remote(["enrollment-groups", "add", "infineon", "--ca", IFX_ROOT, "--intermediate", IFX_INTERMEDIATE, "--json"]),
    remote(["provisioning", "scope", "--set", "0ne00ABC123"]),
  ]);
  assert.equal(ok(hub).stdout, "hub\th1\th1.azure-devices.example\t3\n");
  refused(badHub, "ERR_VALIDATION", 2);
  assert.equal(ok(group).json().caCertificates.length, 1);
  assert.equal(ok(scope).stdout, "0ne00ABC123\n");
  assert.deepEqual(await get("/v1/provisioning/settings"), { idScope: "0ne00ABC123" });
  const e = ok(await remote(["enrollments", "add", "pump-1", "--ek", ek, "--allocation", "static", "--hub", "h1", "--json"])).json();
  assert.deepEqual([e.registrationId, e.allocation], ["pump-1", { policy: "static", hub: "h1" }]);

  const [update, enrollments, regs, nobody] = await Promise.all([
    remote(["enrollments", "update", "pump-1", "--disabled", "--json"]),
    remote(["enrollment-groups", "list"], tokens.carol),
    remote(["registrations", "list", "--group", "infineon", "--json"], tokens.carol),
    remote(["registrations", "show", "nobody"]),
  ]);
  assert.equal(ok(update).json().enabled, false);
  assert.match(ok(enrollments).stdout, /^infineon\tenabled\thashed\t/m);
  assert.deepEqual(ok(regs).json(), []);
  refused(nobody, "ERR_NOT_FOUND", 1);
  assert.equal(((await get("/v1/provisioning/enrollments/pump-1")) as { enabled: boolean }).enabled, false);

  for (const x of await Promise.all([remote(["enrollments", "remove", "pump-1"]), remote(["enrollment-groups", "remove", "infineon"])])) ok(x);
  ok(await remote(["hubs", "remove", "h1"]));
  assert.deepEqual(await Promise.all([get("/v1/provisioning/enrollments"), get("/v1/provisioning/enrollment-groups"), get("/v1/provisioning/hubs")]), [[], [], []]);
  const actors = ((await get("/v1/audit?action=provisioning.*&limit=100")).entries as { actor: string }[]).map((x) => x.actor);
  assert.deepEqual([...new Set(actors)], ["admin:alice"]);
});

test("attack: a wrong token (401), the auditor writing (403) and an admin outside the CA group (403) are refused with the table's exit codes and change nothing", async () => {
  const { remote, get, tokens } = r;
  ok(await remote(["config", "set", "admins.ca", "alice"]));
  const results = await Promise.all([
    remote(["ca", "templates", "list"], "tpmtrust_not-a-token"),
    remote(["hubs", "list"], "tpmtrust_not-a-token"),
    remote(["ca", "templates", "add", "--name", "t2"], tokens.carol),
    remote(["hubs", "add", "h9", "--hostname", "h9.example"], tokens.carol),
    remote(["ca", "templates", "add", "--name", "t3"], tokens.bob),
    remote(["ca", "crl", "--out", join(r.dir, "inputs", "bob.crl")], tokens.bob),
  ]);
  ["ERR_UNAUTHENTICATED", "ERR_UNAUTHENTICATED", "ERR_FORBIDDEN", "ERR_FORBIDDEN", "ERR_FORBIDDEN", "ERR_FORBIDDEN"].forEach((code, i) => refused(results[i], code, 1));
  assert.match(results[4].stderr, /principal bob is not among the administrators of ca/);
  ok(await remote(["hubs", "list"], tokens.bob));
  assert.deepEqual(await get("/v1/ca/templates"), []);
  assert.deepEqual(await get("/v1/provisioning/hubs"), []);
});

test("serve runs the service itself: its help says so and --server is refused (exit 2)", async () => {
  const [help, run] = await Promise.all([cli(["serve", "--help"]), cli(["serve", "--server", "http://127.0.0.1:1"], { cwd: r.workstation, env: CLEAN_ENV })]);
  assert.match(ok(help).stdout, /on the service's machine only, never with --server/);
  refused(run, "ERR_USAGE", 2);
  assert.match(run.stderr, /tpmtrust serve runs the service itself: run it on the service's machine, without --server/);
});
