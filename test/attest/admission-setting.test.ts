/**
 * Admission by EK certificate chain set as a database setting (tpmtrust config set admit
 * ek-cert-chain, default-class C), not by serve's flags: the settings and the TPM CA are set from a
 * workstation with --server; a swtpm (the agent as a process, the service over real HTTP on
 * 127.0.0.1) whose EK certificate does not chain to a root in the trust store is refused
 * (ERR_EK_NOT_TRUSTED) and nothing is made; once its CA is imported, a fresh host is admitted on its
 * first `agent activate` into the default class, audited as an admission (host.admit).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { ok, refused, remoteAdmin, type RemoteAdmin } from "../helpers/remote-admin.js";
import { agent, out } from "../e2e/harness.js";

const CLASS = "gen11";
const IFX_ROOT = fileURLToPath(new URL("../fixtures/manufacturer-roots/keylime-tpm_cert_store/IFX1.pem", import.meta.url));
let r: RemoteAdmin;
let tpm: Swtpm;

before(async () => {
  [r, tpm] = await Promise.all([remoteAdmin("tpmtrust-admit-setting-"), startSwtpm({ ekCerts: true })]);
});
after(async () => {
  await Promise.all([r?.close(), tpm?.stop()]);
});

const activate = (name: string) => agent(["activate", "--server", r.svc.url, "--tpm", tpm.tcti, "--state-dir", join(r.dir, name), "--json"]);
const admissions = async () => (await r.get("/v1/audit?action=host.admit&order=asc")).entries as { actor: string; subject: string | null; outcome: string; details: Record<string, any> }[];

test("config set admit ek-cert-chain over --server: a TPM whose EK certificate does not chain is refused; once its CA is trusted, it is admitted into default-class at its first activation", async () => {
  // the trust store holds a TPM CA, but not the one that issued this TPM's EK certificate
  ok(await r.remote(["trust", "import", "--root", IFX_ROOT]));
  refused(await r.remote(["config", "set", "admit", "ek-cert-chain"]), "ERR_VALIDATION", 2); // default-class first
  ok(await r.remote(["config", "set", "default-class", CLASS]));
  const set = ok(await r.remote(["config", "set", "admit", "ek-cert-chain"]));
  assert.match(set.stdout, /^admit\tek-cert-chain$/m);
  assert.match(set.stdout, new RegExp(`^default-class\\t${CLASS}$`, "m"));

  const stranger = await activate("first");
  assert.equal(stranger.code, 1, out(stranger));
  assert.match(stranger.stderr, /ERR_EK_NOT_TRUSTED/);
  assert.deepEqual(await r.get("/v1/hosts"), []);
  const refusedEntry = (await admissions()).at(-1)!;
  assert.deepEqual([refusedEntry.outcome, refusedEntry.details.code], ["failure", "ERR_EK_NOT_TRUSTED"]);

  // the swtpm CA (root and intermediate) imported from the workstation
  const ca = [r.input("swtpm-root.pem", tpm.ca!.rootPem), r.input("swtpm-intermediate.pem", tpm.ca!.intermediatePem)];
  const imp = ok(await r.remote(["trust", "import", ...ca, "--json"])).json();
  assert.deepEqual(imp.added.map((a: { kind: string }) => a.kind).sort(), ["intermediate", "root"]);

  const a = await activate("second");
  assert.equal(a.code, 0, out(a));
  const name = a.json().host as string;
  const h = await r.get(`/v1/hosts/${name}`);
  assert.deepEqual([h.hardwareClass, h.trustMethod, h.aks.length], [CLASS, "ek-cert", 1]);
  const admitted = (await admissions()).filter((e) => e.outcome === "success");
  assert.equal(admitted.length, 1);
  assert.deepEqual([admitted[0].actor, admitted[0].subject, admitted[0].details.hardwareClass], ["admission:ek-cert-chain", name, CLASS]);
  // the settings' own changes name the administrator who made them
  const changes = (await r.get("/v1/audit?action=config.*")).entries as { actor: string }[];
  assert.ok(changes.length >= 2 && changes.every((e) => e.actor === "admin:alice"), JSON.stringify(changes));
});
