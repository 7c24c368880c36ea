/**
 * Key release with the CLI as operators and agents run it (separate processes), against the service
 * over real HTTP on 127.0.0.1 and its SQLite file: keys servers/providers/clusters administration,
 * and `agent key encrypt|decrypt|data-key|release` of a swtpm host registered and attested with
 * `agent register` and `agent attest`, on the built-in store and a SoftHSM2 token.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "../helpers/cli.js";
import { startSoftHsm, type SoftHsm } from "../helpers/softhsm.js";
import { addPolicy, agent, EVENTLOGS, out, startLogHost, startService, trustSwtpmCa, type LogHost, type Service } from "../e2e/harness.js";

const LOG = "rhel8-gce-uefi.bin";
const CLASS = "gce-n1";

let dir: string;
let db: string;
let svc: Service;
let host: LogHost;
let hsm: SoftHsm;
let stateDir: string;
const keyArgs = (provider: string) => ["--provider", provider, "--state-dir", stateDir];
const keys = (args: string[]) => cli(["keys", ...args, "--db", db], { cwd: dir });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-keys-cli-"));
  db = join(dir, "tpmtrust.db");
  // the service (in this process) and the CLI (run in dir) share one key directory, as operators must
  process.env.TPMTRUST_KEY_DIR = join(dir, ".tpmtrust");
  stateDir = join(dir, "agent");
  hsm = startSoftHsm();
  hsm.initToken("cli-token", "1357");
  process.env.TPMTRUST_TEST_CLI_PIN = "1357";
  [svc, host] = await Promise.all([startService(dir, db), startLogHost(LOG)]);
  await trustSwtpmCa(svc, host.swtpm);
  const b = await cli(["policy", "baseline", "create", "--name", "gce", "--from", join(EVENTLOGS, LOG), "--out", join(dir, "baseline.json")]);
  assert.equal(b.code, 0, out(b));
  assert.equal((await addPolicy(svc, "baseline", "gce", CLASS, JSON.parse(readFileSync(join(dir, "baseline.json"), "utf8")))).status, 201);
  const id = await agent(["identify", "--tpm", host.swtpm.tcti]);
  writeFileSync(join(dir, "host.json"), id.stdout);
  const add = await cli(["hosts", "add", join(dir, "host.json"), "--name", "web-01", "--class", CLASS, "--db", db]);
  assert.equal(add.code, 0, out(add));
  const reg = await agent(["register", "--server", svc.url, "--tpm", host.swtpm.tcti, "--state-dir", stateDir]);
  assert.equal(reg.code, 0, out(reg));
  const att = await agent(["attest", "--tpm", host.swtpm.tcti, "--state-dir", stateDir, "--eventlog", join(EVENTLOGS, LOG)]);
  assert.equal(att.code, 0, out(att));
});
after(async () => {
  await Promise.all([svc?.close(), host?.close()]);
  hsm?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test("keys servers/providers/clusters: the built-in store is the default (master key file 0600 created on first use), PKCS#11 by module and token", async () => {
  const p = await keys(["providers", "add", "disks", "--json"]);
  assert.equal(p.code, 0, out(p));
  assert.equal(p.json().keyServer, "local");
  assert.equal(statSync(join(dir, ".tpmtrust", "master.key")).mode & 0o777, 0o600);

  const bad = await keys(["servers", "add", "x", "--kind", "local", "--module", "/usr/lib/x.so"]);
  assert.equal(bad.code, 2, out(bad));
  const wrongPin = await keys(["servers", "add", "hsm", "--kind", "pkcs11", "--module", hsm.module, "--token-label", "cli-token", "--pin-env", "NO_SUCH_PIN_VARIABLE"]);
  assert.equal(wrongPin.code, 2, out(wrongPin));
  assert.match(wrongPin.stderr, /ERR_IO.*NO_SUCH_PIN_VARIABLE/);
  const s = await keys(["servers", "add", "hsm", "--kind", "pkcs11", "--module", hsm.module, "--token-label", "cli-token", "--pin-env", "TPMTRUST_TEST_CLI_PIN"]);
  assert.equal(s.code, 0, out(s));
  const h = await keys(["providers", "add", "hsm-disks", "--key-server", "hsm", "--key-id", "vm-disks"]);
  assert.equal(h.code, 0, out(h));
  const c = await keys(["clusters", "add", "lab", "--classes", CLASS, "--providers", "disks,hsm-disks"]);
  assert.equal(c.code, 0, out(c));
  assert.match(c.stdout, /providers: disks, hsm-disks/);

  const servers = (await keys(["servers", "list", "--json"])).json();
  assert.deepEqual(servers.map((x: { name: string }) => x.name), ["hsm", "local"]);
  const shown = await keys(["providers", "show", "hsm-disks"]);
  assert.match(shown.stdout, /key server: hsm \(pkcs11\)[\s\S]*clusters: lab[\s\S]*v1 created .* \(current\)/);
  assert.equal((await keys(["clusters", "show", "nope"])).code, 1);
});

test("agent key: encrypt → decrypt, data-key, release into the swtpm, on both key servers", async () => {
  for (const provider of ["disks", "hsm-disks"]) {
    const plain = join(dir, `${provider}.txt`);
    writeFileSync(plain, "the secret of vm-17\n");
    const env = join(dir, `${provider}.env`);
    const e = await agent(["key", "encrypt", ...keyArgs(provider), "--in", plain, "--out", env, "--context", "vm=17"]);
    assert.equal(e.code, 0, out(e));
    assert.equal(readFileSync(env).subarray(0, 4).toString(), "TTKE");
    const d = await agent(["key", "decrypt", ...keyArgs(provider), "--in", env, "--context", "vm=17"]);
    assert.equal(d.code, 0, out(d));
    assert.equal(d.stdout, "the secret of vm-17\n");
    if (provider === "disks") {
      // base64 through standard input, and a wrong context
      const viaStdin = await cli(["agent", "key", "decrypt", ...keyArgs(provider), "--context", "vm=17", "--json"], { input: readFileSync(env).toString("base64") });
      assert.equal(Buffer.from(viaStdin.json().plaintext, "base64").toString(), "the secret of vm-17\n");
      const wrong = await agent(["key", "decrypt", ...keyArgs(provider), "--in", env]);
      assert.equal(wrong.code, 1, out(wrong));
      assert.match(wrong.stderr, /ERR_DECRYPT_FAILED/);
    }

    const dk = await agent(["key", "data-key", ...keyArgs(provider), "--out", join(dir, "dek"), "--wrapped-out", join(dir, "dek.wrapped"), "--json"]);
    assert.equal(dk.code, 0, out(dk));
    assert.equal(statSync(join(dir, "dek")).mode & 0o777, 0o600);
    assert.equal(dk.json().plaintext, undefined, "with --out the key is not printed");
    const rel = await agent(["key", "release", ...keyArgs(provider), "--tpm", host.swtpm.tcti, "--wrapped-key", join(dir, "dek.wrapped"), "--out", join(dir, "released")]);
    assert.equal(rel.code, 0, out(rel));
    assert.deepEqual(readFileSync(join(dir, "released")), readFileSync(join(dir, "dek")), "the TPM unsealed the same data key");
    if (provider === "hsm-disks") {
      const fresh = await agent(["key", "release", ...keyArgs(provider), "--tpm", host.swtpm.tcti, "--size", "24", "--json"]);
      assert.equal(fresh.code, 0, out(fresh));
      assert.equal(Buffer.from(fresh.json().key, "base64").length, 24);
      const reopened = await cli(["agent", "key", "decrypt", ...keyArgs(provider), "--json"], { input: fresh.json().wrappedKey });
      assert.equal(reopened.json().plaintext, fresh.json().key, "the wrapped form opens to what the TPM unsealed");
    }
  }
});

test("rotation, retirement, disabling and cluster removal from the CLI show up at the agent with their codes", async () => {
  const plain = join(dir, "r.txt");
  writeFileSync(plain, "v1 data");
  const old = join(dir, "v1.env");
  assert.equal((await agent(["key", "encrypt", ...keyArgs("disks"), "--in", plain, "--out", old])).code, 0);
  const rot = await keys(["providers", "rotate", "disks", "--json"]);
  assert.equal(rot.json().currentVersion, 2);
  const enc = await agent(["key", "encrypt", ...keyArgs("disks"), "--in", plain, "--json"]);
  assert.equal(enc.json().keyVersion, 2);
  assert.equal((await agent(["key", "decrypt", ...keyArgs("disks"), "--in", old])).stdout, "v1 data");
  const cur = await keys(["providers", "retire-version", "disks", "2"]);
  assert.equal(cur.code, 1, out(cur));
  assert.match(cur.stderr, /ERR_CONFLICT/);
  assert.equal((await keys(["providers", "retire-version", "disks", "1"])).code, 0);
  const retired = await agent(["key", "decrypt", ...keyArgs("disks"), "--in", old]);
  assert.equal(retired.code, 1);
  assert.match(retired.stderr, /ERR_KEY_RETIRED/);

  assert.equal((await keys(["providers", "disable", "hsm-disks"])).code, 0);
  const disabled = await agent(["key", "data-key", ...keyArgs("hsm-disks")]);
  assert.equal(disabled.code, 1);
  assert.match(disabled.stderr, /ERR_DISABLED/);
  assert.equal((await keys(["providers", "enable", "hsm-disks"])).code, 0);
  assert.equal((await keys(["clusters", "remove", "lab"])).code, 0);
  const forbidden = await agent(["key", "data-key", ...keyArgs("hsm-disks")]);
  assert.equal(forbidden.code, 1);
  assert.match(forbidden.stderr, /ERR_FORBIDDEN/);

  const noToken = await agent(["key", "encrypt", "--provider", "disks", "--state-dir", join(dir, "empty"), "--in", plain]);
  assert.equal(noToken.code, 2, out(noToken));
  assert.match(noToken.stderr, /ERR_USAGE: no attestation token/);
  const audit = await cli(["audit", "verify", "--db", db]);
  assert.equal(audit.code, 0, out(audit));
});
