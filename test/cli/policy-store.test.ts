/** `tpmtrust policy add|list|remove`, `policy secureboot create`, `ci add`, `webhooks …` on a SQLite file, as operators run them. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addPolicy } from "../../src/attest/policies.js";
import { openStore } from "../../src/store/index.js";
import { cli } from "../helpers/cli.js";
import { EVENTLOGS } from "../helpers/attest-host.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-policy-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const db = join(dir, "tpmtrust.db");
const RHEL = join(EVENTLOGS, "rhel8-gce-uefi.bin");

test("policies: a baseline file added per class, a Secure Boot document, a CI digest; listed, versioned, removed; audited", async () => {
  const baseline = join(dir, "gce.json");
  assert.equal((await cli(["policy", "baseline", "create", "--name", "gce", "--from", RHEL, "--out", baseline])).code, 0);
  const add = await cli(["policy", "add", baseline, "--kind", "baseline", "--class", "gce-n1", "--db", db, "--json"]);
  assert.equal(add.code, 0, add.stderr);
  const p = add.json();
  assert.deepEqual([p.kind, p.name, p.version, p.hardwareClass, p.policyVersion], ["baseline", "gce", 1, "gce-n1", "v2"]);

  // a document of another kind is rejected with a stable code
  const wrong = await cli(["policy", "add", baseline, "--kind", "software", "--db", db]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /^error ERR_VALIDATION: software policy is not valid/);

  const sb = await cli(["policy", "secureboot", "create", "--name", "sb", "--authority", "AB".repeat(32)]);
  assert.equal(sb.code, 0, sb.stderr);
  assert.deepEqual(JSON.parse(sb.stdout).authorities, ["ab".repeat(32)]);
  const ci = await cli(["ci", "add", "--name", "wdac", "--digest", "0x" + "11".repeat(32), "--pcrs", "12-14", "--class", "gce-n1", "--policy-version", "v1", "--db", db, "--json"]);
  assert.equal(ci.code, 0, ci.stderr);
  assert.deepEqual([ci.json().document.pcrs, ci.json().policyVersion], [[12, 13, 14], "v1"]);

  const store = await openStore(db);
  try {
    // a second version of the baseline, stored through the same service the CLI uses
    await addPolicy(store, "test", Date.now(), { kind: "baseline", name: "gce", hardwareClass: "gce-n1", document: p.document });
  } finally {
    await store.close();
  }
  const list = await cli(["policy", "list", "--db", db, "--json"]);
  assert.deepEqual(list.json().map((x: { kind: string; name: string; version: number }) => `${x.kind}:${x.name}:${x.version}`), ["baseline:gce:2", "ci:wdac:1"]);

  assert.equal((await cli(["policy", "remove", p.id, "--db", db])).code, 0);
  const all = await cli(["policy", "list", "--all", "--kind", "baseline", "--db", db]);
  assert.equal(all.stdout.trim().split("\n").filter((l) => l.endsWith("disabled")).length, 2);

  const s2 = await openStore(db);
  try {
    const actions = (await s2.audit.list({ limit: 100 })).map((e) => `${e.action}:${e.outcome}`);
    assert.deepEqual(actions, ["policy.add:success", "policy.add:failure", "policy.add:success", "policy.add:success", "policy.remove:success"]);
  } finally {
    await s2.close();
  }
});

test("webhooks: add with a secret file, list without secrets, remove", async () => {
  const secret = join(dir, "hook.secret");
  writeFileSync(secret, "a-long-enough-secret\n");
  const add = await cli(["webhooks", "add", "--url", "https://hooks.example.test/tpm", "--secret-file", secret, "--event", "host.health", "--db", db, "--json"]);
  assert.equal(add.code, 0, add.stderr);
  const w = add.json();
  assert.deepEqual([w.url, w.events, w.secret], ["https://hooks.example.test/tpm", ["host.health"], undefined]);
  const list = await cli(["webhooks", "list", "--db", db]);
  assert.match(list.stdout, /https:\/\/hooks\.example\.test\/tpm\thost\.health/);
  assert.doesNotMatch(list.stdout, /a-long-enough-secret/);
  assert.equal((await cli(["webhooks", "add", "--url", "ftp://x.test/", "--secret-file", secret, "--db", db])).code, 2);
  assert.equal((await cli(["webhooks", "remove", w.id, "--db", db])).code, 0);
});
