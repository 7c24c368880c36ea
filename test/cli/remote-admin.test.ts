/**
 * Remote administration: the CLI as a process against the service over real HTTP on 127.0.0.1,
 * with --server/--token or $TPMTRUST_SERVER/$TPMTRUST_TOKEN, never opening the database or key
 * servers itself. Named administrators (admin token create --name) are named by every audit entry
 * of their calls; a group of allowed principals per area (config set admins.keys …) refuses an admin
 * outside it with 403 ERR_FORBIDDEN (attack); tokens are revoked by principal name; no service is
 * ERR_UNREACHABLE (exit 2), a bad token ERR_UNAUTHENTICATED (exit 1).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, type CliResult } from "../helpers/cli.js";
import { freePorts } from "../helpers/ports.js";
import { api, out, startService, type Service } from "../e2e/harness.js";

let dir: string;
let db: string;
let svc: Service;
let alice: string;
let bob: string;

/** The CLI as an operator runs it on a workstation: a working folder of its own, no database there. */
const remote = (args: string[], token: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> => cli([...args, "--server", svc.url, "--token", token], { cwd: join(dir, "workstation"), env });
const entries = async (q: string) => (await api(svc.url, "GET", `/v1/audit?${q}`, undefined, svc.admin)).body.entries as { actor: string; action: string; subject: string | null; outcome: string; details: any }[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-remote-"));
  db = join(dir, "tpmtrust.db");
  svc = await startService(join(dir, "service"), db);
  // bootstrap on the service's machine: the local database
  const [a, b] = await Promise.all([
    cli(["admin", "token", "create", "--role", "admin", "--name", "alice", "--db", db, "--json"]),
    cli(["admin", "token", "create", "--role", "admin", "--name", "bob", "--db", db, "--json"]),
  ]);
  assert.equal(a.code, 0, out(a));
  assert.equal(b.code, 0, out(b));
  alice = a.json().token;
  bob = b.json().token;
  assert.equal(a.json().name, "alice");
  mkdirSync(join(dir, "workstation"));
});
after(async () => {
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("key providers are created and rotated on the service from a workstation; audit entries name the principal", async () => {
  const add = await remote(["keys", "providers", "add", "vm-disks", "--json"], alice);
  assert.equal(add.code, 0, out(add));
  assert.equal(add.json().currentVersion, 1);
  // $TPMTRUST_SERVER and $TPMTRUST_TOKEN instead of the options
  const rot = await cli(["keys", "providers", "rotate", "vm-disks", "--json"], { cwd: join(dir, "workstation"), env: { TPMTRUST_SERVER: svc.url, TPMTRUST_TOKEN: alice, SOFTHSM2_CONF: "/nonexistent" } });
  assert.equal(rot.code, 0, out(rot));
  assert.equal(rot.json().currentVersion, 2);
  const hosts = await remote(["hosts", "list", "--json"], bob);
  assert.equal(hosts.code, 0, out(hosts));
  assert.deepEqual(hosts.json(), []);
  // nothing was opened or created on the workstation
  assert.deepEqual(readdirSync(join(dir, "workstation")), []);
  const rotated = await entries("action=keys.provider.rotate");
  assert.equal(rotated.at(-1)!.actor, "admin:alice");
  const created = await entries("action=admin.token.create");
  assert.deepEqual(created.filter((e) => e.details.name).map((e) => [e.actor, e.details.name]).sort(), [["cli", "alice"], ["cli", "bob"]]);
  const list = await remote(["admin", "token", "list", "--name", "alice", "--json"], alice);
  assert.equal(list.code, 0, out(list));
  assert.deepEqual(list.json().map((t: { name: string; role: string }) => [t.name, t.role]), [["alice", "admin"]]);
});

test("attack: an admin outside the key providers' group gets 403 ERR_FORBIDDEN, audited; the group's member still works", async () => {
  const set = await remote(["config", "set", "admins.keys", "alice"], alice);
  assert.equal(set.code, 0, out(set));
  const denied = await remote(["keys", "providers", "rotate", "vm-disks"], bob);
  assert.equal(denied.code, 1, out(denied));
  assert.match(denied.stderr, /ERR_FORBIDDEN: principal bob is not among the administrators of keys/);
  // an unnamed admin token (the service's initial one) is outside every group
  const initial = await api(svc.url, "POST", "/v1/keys/providers/vm-disks/rotate", undefined, svc.admin);
  assert.equal(initial.status, 403);
  assert.equal(initial.body.code, "ERR_FORBIDDEN");
  const d = (await entries("action=auth.denied")).filter((e) => e.subject === "POST /v1/keys/providers/:name/rotate");
  assert.equal(d.length, 2);
  assert.deepEqual([d[0].actor, d[0].details.code], ["admin:bob", "ERR_FORBIDDEN"]);
  assert.match(d[1].actor, /^admin:[0-9a-f-]{36}$/);
  // other areas are not narrowed: bob still administers hosts
  assert.equal((await remote(["hosts", "list"], bob)).code, 0);
  const ok = await remote(["keys", "providers", "show", "vm-disks", "--json"], alice);
  assert.equal(ok.code, 0, out(ok));
  assert.equal(ok.json().currentVersion, 2);
});

test("tokens are revoked by principal name; a revoked or wrong token is ERR_UNAUTHENTICATED (exit 1)", async () => {
  const r = await remote(["admin", "token", "revoke", "--name", "bob"], alice);
  assert.equal(r.code, 0, out(r));
  assert.match(r.stdout, /revoked 1 token\(s\) of bob/);
  const [revoked, wrong] = await Promise.all([remote(["hosts", "list"], bob), remote(["hosts", "list"], "tpmtrust_not-a-token")]);
  for (const x of [revoked, wrong]) {
    assert.equal(x.code, 1, out(x));
    assert.match(x.stderr, /ERR_UNAUTHENTICATED/);
  }
});

test("no service is ERR_UNREACHABLE (exit 2); --db with --server and --server without a token are ERR_USAGE (exit 2)", async () => {
  const port = await freePorts(1);
  const [none, both, noToken] = await Promise.all([
    cli(["hosts", "list", "--server", `http://127.0.0.1:${port}`, "--token", alice]),
    cli(["hosts", "list", "--server", svc.url, "--token", alice, "--db", db]),
    cli(["hosts", "list", "--server", svc.url], { env: { TPMTRUST_TOKEN: "" } }),
  ]);
  assert.equal(none.code, 2, out(none));
  assert.match(none.stderr, /ERR_UNREACHABLE: http:\/\/127\.0\.0\.1:\d+ is unreachable/);
  for (const x of [both, noToken]) {
    assert.equal(x.code, 2, out(x));
    assert.match(x.stderr, /ERR_USAGE/);
  }
});
