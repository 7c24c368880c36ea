/**
 * Remote administration of EK trust (trust …, confirm), policies (policy …, ci add), webhooks and the
 * audit log: the CLI with --server from a clean workstation folder (no database, HSM or key-server
 * environment) against the service over real HTTP on 127.0.0.1; each effect is checked through the
 * API. Attack: a wrong token (401), an auditor's token on a write and an admin outside the trust
 * group (403) are refused with the error table's code and exit, and change nothing.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { secureBootPolicy } from "../../src/policy/secure-boot.js";
import { ok, refused, remoteAdmin, type RemoteAdmin } from "../helpers/remote-admin.js";
import { api } from "../e2e/harness.js";

const IFX_ROOT = fileURLToPath(new URL("../fixtures/manufacturer-roots/keylime-tpm_cert_store/IFX1.pem", import.meta.url));
const IFX_INTERMEDIATE = fileURLToPath(new URL("../fixtures/manufacturer-roots/infineon-intermediates/IFX_RSA_035.pem", import.meta.url));
const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

let r: RemoteAdmin;
before(async () => {
  r = await remoteAdmin("tpmtrust-remote-trust-");
});
after(() => r?.close());

test("trust: EK roots, allow-list, allow-list folders, revoked EKs and confirm, from a workstation", async () => {
  const { remote, get, input, tokens } = r;
  // an allow-list folder is the service machine's, named by absolute path
  const folder = join(r.dir, "service", "allowlist");
  mkdirSync(folder, { mode: 0o755 });
  writeFileSync(join(folder, C), "");
  const [imp, add, dir, revoke] = await Promise.all([
    remote(["trust", "import", IFX_ROOT, IFX_INTERMEDIATE, "--json"]),
    remote(["trust", "allowlist", "add", A, "--label", "rack 1"]),
    remote(["trust", "allowlist-dir", "add", folder]),
    remote(["trust", "ek", "revoke", B, "--reason", "stolen"]),
  ]);
  assert.equal(ok(imp).json().added.length, 2);
  assert.match(ok(add).stdout, /^a{64}\tadded$/m);
  assert.match(ok(dir).stdout, /\tadded\t1 EK hashes/);
  assert.match(ok(revoke).stdout, /^b{64}\trevoked$/m);
  const cas = (await get("/v1/trust/cas")) as { id: string }[];
  assert.equal(cas.length, 2);
  assert.deepEqual(((await get("/v1/trust/allowlist")) as { ekHash: string; source: string }[]).map((e) => [e.ekHash, e.source]), [[A, "db"], [C, folder]]);
  assert.deepEqual(((await get("/v1/trust/revoked-eks")) as { ekHash: string; reason: string }[]).map((e) => [e.ekHash, e.reason]), [[B, "stolen"]]);

  const [imported, listed, confirmed, relative] = await Promise.all([
    remote(["trust", "allowlist", "import", input("hashes.txt", `# two TPMs\n${A}\n${B.toUpperCase()}\n`), "--json"]),
    remote(["trust", "allowlist", "list", "--json"], tokens.carol),
    remote(["confirm", "--ek-hash", B, "--json"], tokens.carol),
    remote(["trust", "allowlist-dir", "add", "allowlist"]),
  ]);
  assert.deepEqual(ok(imported).json(), { added: [B], present: [A] });
  assert.deepEqual(ok(listed).json().warnings, []);
  // B is revoked: not trusted whatever vouches for it (exit 1), answered to the auditor
  assert.equal(confirmed.code, 1, confirmed.stderr);
  assert.equal(confirmed.json().trusted, false);
  refused(relative, "ERR_VALIDATION", 2);

  const [rm, unrevoke, unlist, undir] = await Promise.all([
    remote(["trust", "cas", "remove", cas[0].id]),
    remote(["trust", "ek", "unrevoke", B]),
    remote(["trust", "allowlist", "remove", A]),
    remote(["trust", "allowlist-dir", "remove", folder]),
  ]);
  assert.match(ok(rm).stdout, new RegExp(`^removed (root|intermediate) ${cas[0].id}\n$`));
  for (const x of [unrevoke, unlist, undir]) ok(x);
  assert.equal(((await get("/v1/trust/cas")) as unknown[]).length, 1);
  assert.deepEqual(await get("/v1/trust/revoked-eks"), []);
  assert.deepEqual(((await get("/v1/trust/allowlist")) as { ekHash: string }[]).map((e) => e.ekHash), [B]);
  assert.deepEqual(await get("/v1/trust/allowlist-dirs"), []);
  const actors = new Set(((await get("/v1/audit?action=trust.*&limit=100")).entries as { actor: string }[]).map((e) => e.actor));
  assert.ok(actors.has("admin:alice") && !actors.has("cli"), [...actors].join());
  // nothing was opened or created on the workstation
  assert.deepEqual(readdirSync(r.workstation), []);
});

test("policy, ci and webhooks from a workstation; an invalid document is refused by the service and audited", async () => {
  const { remote, get, input, tokens } = r;
  const sb = input("sb.json", JSON.stringify(secureBootPolicy("sb")));
  const [dry, added, ci, hook, bad] = await Promise.all([
    remote(["policy", "add", sb, "--kind", "secureboot", "--class", "gen10", "--dry-run", "--json"]),
    remote(["policy", "add", sb, "--kind", "secureboot", "--class", "gen10", "--json"]),
    remote(["ci", "add", "--name", "wdac", "--digest", "c".repeat(64), "--json"]),
    remote(["webhooks", "add", "--url", "https://hooks.example/tpm", "--secret-file", input("secret", "webhook-secret-0123456789\n"), "--json"]),
    remote(["policy", "add", input("bad.json", JSON.stringify({ name: "bad", unexpected: true })), "--kind", "secureboot"]),
  ]);
  assert.deepEqual(ok(dry).json(), { dryRun: true, hosts: [], turnsUnhealthy: [] });
  const p = ok(added).json();
  assert.deepEqual([p.kind, p.name, p.hardwareClass, p.createdBy], ["secureboot", "sb", "gen10", "admin:alice"]);
  const ciId = ok(ci).json().id as string;
  const hookId = ok(hook).json().id as string;
  refused(bad, "ERR_VALIDATION", 2);
  const failed = (await get("/v1/audit?action=policy.add&outcome=failure")).entries as { actor: string; subject: string }[];
  assert.deepEqual(failed.map((e) => [e.actor, e.subject]), [["admin:alice", "secureboot:bad"]]);
  assert.deepEqual(((await get("/v1/webhooks")) as { id: string }[]).map((w) => w.id), [hookId]);

  const [list, show, hooks, deliveries] = await Promise.all([
    remote(["policy", "list", "--json"], tokens.carol),
    remote(["policy", "show", ciId], tokens.carol),
    remote(["webhooks", "list"]),
    remote(["webhooks", "deliveries", hookId, "--json"]),
  ]);
  assert.deepEqual(ok(list).json().map((x: { name: string }) => x.name).sort(), ["sb", "wdac"]);
  assert.match(JSON.parse(ok(show).stdout).measuredAs, /in PCR/);
  assert.match(ok(hooks).stdout, new RegExp(`^${hookId}\thttps://hooks\\.example/tpm\tall events\t`, "m"));
  assert.deepEqual(ok(deliveries).json(), []);

  const [removed, unhooked] = await Promise.all([remote(["policy", "remove", p.id]), remote(["webhooks", "remove", hookId])]);
  assert.equal(ok(removed).stdout, "disabled secureboot sb\n");
  ok(unhooked);
  assert.deepEqual(((await get("/v1/policies")) as { name: string }[]).map((x) => x.name), ["wdac"]);
  assert.deepEqual(await get("/v1/webhooks"), []);
});

test("audit: checkpoint, then list with filters, verify and prove as the auditor, from a workstation", async () => {
  const { remote, tokens, svc } = r;
  const cp = ok(await remote(["audit", "checkpoint", "--json"])).json();
  assert.ok(cp.treeSize > 0);
  const [list, verify, prove, missing] = await Promise.all([
    remote(["audit", "list", "--action", "trust.*", "--outcome", "success", "--since", "1h", "--limit", "2", "--json"], tokens.carol),
    remote(["audit", "verify", "--anchor", `${cp.treeSize}:${cp.rootHash}`, "--json"], tokens.carol),
    remote(["audit", "prove", "1", "--json"], tokens.carol),
    remote(["audit", "prove", "999999"], tokens.carol),
  ]);
  const entries = ok(list).json() as { seq: number; action: string; outcome: string }[];
  assert.equal(entries.length, 2);
  assert.ok(entries.every((e) => e.action.startsWith("trust.") && e.outcome === "success"));
  assert.ok(entries[0].seq > entries[1].seq, "newest first");
  const v = ok(verify).json();
  assert.deepEqual([v.code, v.ok, v.database], ["OK", true, svc.url]);
  assert.equal(ok(prove).json().seq, 1);
  refused(missing, "ERR_NOT_FOUND", 1);
});

test("attack: a wrong token (401), the auditor writing (403) and an admin outside the trust group (403) are refused with the table's exit codes and change nothing", async () => {
  const { remote, get, input, tokens } = r;
  ok(await remote(["config", "set", "admins.trust", "alice"]));
  const sb = input("sb2.json", JSON.stringify(secureBootPolicy("sb2")));
  const results = await Promise.all([
    remote(["trust", "cas", "list"], "tpmtrust_not-a-token"),
    remote(["audit", "list"], "tpmtrust_not-a-token"),
    remote(["trust", "allowlist", "add", C], tokens.carol),
    remote(["policy", "add", sb, "--kind", "secureboot"], tokens.carol),
    remote(["webhooks", "list"], tokens.carol),
    remote(["audit", "checkpoint"], tokens.carol),
    remote(["trust", "allowlist", "add", C], tokens.bob),
    remote(["trust", "cas", "list"], tokens.bob),
  ]);
  const codes = ["ERR_UNAUTHENTICATED", "ERR_UNAUTHENTICATED", "ERR_FORBIDDEN", "ERR_FORBIDDEN", "ERR_FORBIDDEN", "ERR_FORBIDDEN", "ERR_FORBIDDEN", "ERR_FORBIDDEN"];
  results.forEach((x, i) => refused(x, codes[i], 1));
  assert.match(results[6].stderr, /principal bob is not among the administrators of trust/);
  // bob still administers what the group does not cover
  ok(await remote(["policy", "list"], tokens.bob));
  assert.ok(!((await get("/v1/trust/allowlist")) as { ekHash: string }[]).some((e) => e.ekHash === C));
  assert.ok(!((await get("/v1/policies")) as { name: string }[]).some((p) => p.name === "sb2"));
  const denied = (await get("/v1/audit?action=auth.denied&limit=100")).entries as { actor: string }[];
  assert.equal(denied.filter((e) => e.actor === "admin:bob").length, 2);
  assert.equal(denied.filter((e) => e.actor === "auditor:carol").length, 4);
});

test("/v1/whoami names the calling token's principal (absent for an unnamed token), as docs/api.md and the OpenAPI document say", async () => {
  const { svc, tokens } = r;
  const [named, auditor, unnamed] = await Promise.all([api(svc.url, "GET", "/v1/whoami", undefined, tokens.alice), api(svc.url, "GET", "/v1/whoami", undefined, tokens.carol), api(svc.url, "GET", "/v1/whoami", undefined, svc.admin)]);
  assert.deepEqual([named.body.role, named.body.name], ["admin", "alice"]);
  assert.deepEqual([auditor.body.role, auditor.body.name], ["auditor", "carol"]);
  assert.equal(unnamed.body.role, "admin");
  assert.ok(!("name" in unnamed.body));
  const doc = (await api(svc.url, "GET", "/openapi.json")).body;
  assert.ok(doc.paths["/v1/whoami"].get.responses["200"].content["application/json"].schema.properties.name);
});
