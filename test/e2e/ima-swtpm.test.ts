/**
 * IMA end to end on swtpm: the test extends a measurement list into PCR 10 (every bank, as the
 * kernel does) and writes the list file; the agent (`agent attest --ima`, and its library in
 * continuous rounds) sends the entries the quote covers; the service verifies increments against
 * the running PCR 10 and judges them by a runtime policy learned with `policy runtime create`.
 * A file outside the policy makes the host unhealthy with the entry in the diff. `verify quote --ima`
 * checks a tpm2-tools quote over PCR 10 of a list tpm2_pcrextend extended.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { hash } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attest, readToken, ServiceClient } from "../../src/agent/index.js";
import { hashAlgByName } from "../../src/tpm/constants.js";
import { pcrSelection } from "../../src/tpm/structures.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { parseImaList } from "../../src/verify/ima/index.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { tpm2 } from "../helpers/tpm2tools.js";
import { entry, FIXTURES, sha, type Built } from "../verify/ima-build.js";
import { addPolicy, agent, api, EVENTLOGS, out, startLogHost, startService, trustSwtpmCa, type LogHost, type Service } from "./harness.js";
import { PCR_Extend, pcrReadAll } from "../../src/tpm/commands/index.js";

const LOG = "rhel8-gce-uefi.bin";
const CLASS = "ima-class";
const HOST = "ima-01";

let dir: string;
let db: string;
let svc: Service;
let host: LogHost;
let bare: Swtpm;
let stateDir: string;
let banks: string[];
const logPath = join(EVENTLOGS, LOG);
const listPath = () => join(dir, "binary_runtime_measurements");

/** The real ima-sig entries (less their boot_aggregate), and files the host measures later. */
const realEntries = () => readFileSync(FIXTURES + "keylime-ima-sig.ascii", "utf8").trim().split("\n").slice(1);
const later = [entry({ path: "/usr/bin/later-1", digest: sha("sha256", "later-1") }), entry({ path: "/usr/bin/later-2", digest: sha("sha256", "later-2") })];

/** IMA's extend: every bank gets its hash of the template data (SHA-1: the template hash). */
async function extend(binary: Buffer): Promise<void> {
  for (const e of parseImaList(binary).entries) {
    await host.tpm.run(PCR_Extend, { pcrHandle: 10, digests: banks.map((b) => ({ hashAlg: hashAlgByName(b)!, digest: b === "sha1" ? e.templateHash : hash(b, e.hashed, "buffer") })) });
  }
}
const append = (b: Built) => appendFileSync(listPath(), b.binary);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-ima-e2e-"));
  db = join(dir, "tpmtrust.db");
  stateDir = join(dir, "agent");
  [svc, host, bare] = await Promise.all([startService(dir, db), startLogHost(LOG), startSwtpm()]);
  banks = parseEventLog(host.log).algorithms.map((a) => a.bank);
  await trustSwtpmCa(svc, host.swtpm);
  // boot_aggregate over the swtpm's PCRs 0-7 (SHA-256), then the real entries
  const { values } = await pcrReadAll(host.tpm, [pcrSelection(hashAlgByName("sha256")!, [0, 1, 2, 3, 4, 5, 6, 7])]);
  const pcr = values.get(hashAlgByName("sha256")!)!;
  const boot = entry({ path: "boot_aggregate", digest: sha("sha256", Buffer.concat([0, 1, 2, 3, 4, 5, 6, 7].map((i) => pcr.get(i)!))) });
  const first = parseImaList(Buffer.from([boot.line, ...realEntries()].join("\n") + "\n"));
  const { encodeBinary } = await import("../../src/verify/ima/index.js");
  writeFileSync(listPath(), encodeBinary(first.entries));
  await extend(readFileSync(listPath()));
  // the reference host measured the later files too
  writeFileSync(join(dir, "reference"), Buffer.concat([readFileSync(listPath()), ...later.map((l) => l.binary)]));
  const [b, r] = await Promise.all([
    cli(["policy", "baseline", "create", "--name", "ima-baseline", "--from", logPath, "--out", join(dir, "baseline.json")]),
    cli(["policy", "runtime", "create", "--from", join(dir, "reference"), "--name", "ima-runtime", "--out", join(dir, "runtime.json")]),
  ]);
  assert.equal(b.code, 0, out(b));
  assert.equal(r.code, 0, out(r));
  for (const [kind, file, name] of [["baseline", "baseline.json", "ima-baseline"], ["runtime", "runtime.json", "ima-runtime"]]) {
    const p = await addPolicy(svc, kind, name, CLASS, JSON.parse(readFileSync(join(dir, file), "utf8")));
    assert.equal(p.status, 201, JSON.stringify(p.body));
  }
  const id = await agent(["identify", "--tpm", host.swtpm.tcti]);
  assert.equal(id.code, 0, out(id));
  writeFileSync(join(dir, "host.json"), id.stdout);
  const add = await cli(["hosts", "add", join(dir, "host.json"), "--name", HOST, "--class", CLASS, "--db", db]);
  assert.equal(add.code, 0, out(add));
  const reg = await agent(["register", "--server", svc.url, "--tpm", host.swtpm.tcti, "--state-dir", stateDir]);
  assert.equal(reg.code, 0, out(reg));
});

after(async () => {
  await Promise.all([svc?.close(), host?.close(), bare?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

test("agent attest --ima: the whole list replays to the quoted PCR 10 and every entry is allowed", async () => {
  const r = await agent(["attest", "--server", svc.url, "--tpm", host.swtpm.tcti, "--state-dir", stateDir, "--eventlog", logPath, "--ima", listPath(), "--json"]);
  assert.equal(r.code, 0, out(r));
  const j = r.json();
  assert.equal(j.verdict, "pass", JSON.stringify(j.diff));
  assert.deepEqual([j.ima.entriesVerified, j.ima.nextIndex, j.ima.covered, j.ima.failures], [6, 6, 6, 0]);
  assert.ok(j.policies.some((p: { kind: string }) => p.kind === "runtime"));
});

test("continuous: only new entries are sent; entries appended after the quote wait for the next one; a file outside the policy fails the host", async () => {
  const service = new ServiceClient({ url: svc.url });
  const progress = { nextIndex: 0 };
  const round = () => attest(host.tpm, service, { stateDir, eventLog: logPath, ima: { path: listPath(), progress } });
  let r = await round();
  assert.equal(r.verdict, "pass");
  assert.equal(progress.nextIndex, 6);

  append(later[0]);
  await extend(later[0].binary);
  r = await round();
  assert.equal(r.verdict, "pass", JSON.stringify(r.diff));
  assert.deepEqual([r.ima?.covered, r.ima?.nextIndex], [1, 7]);

  // IMA appends before it extends: an entry in the list but not yet in PCR 10 is left for later
  append(later[1]);
  r = await round();
  assert.equal(r.verdict, "pass", JSON.stringify(r.diff));
  assert.deepEqual([r.ima?.covered, r.ima?.nextIndex], [0, 7]);
  await extend(later[1].binary);
  r = await round();
  assert.deepEqual([r.verdict, r.ima?.covered, r.ima?.nextIndex], ["pass", 1, 8]);
  assert.ok(readToken(stateDir));

  const miner = entry({ path: "/usr/local/bin/miner", digest: sha("sha256", "miner") });
  append(miner);
  await extend(miner.binary);
  r = await round();
  assert.equal(r.verdict, "fail");
  assert.equal(r.code, "ERR_IMA_DIGEST_NOT_ALLOWED");
  const diffs = (r.diff as { kind: string; diffs: { record: number; description: string; code: string; actual: Record<string, string> }[] }[]).find((d) => d.kind === "runtime")!.diffs;
  assert.deepEqual(diffs.map((d) => [d.record, d.description, d.code, d.actual.sha256]), [[8, "/usr/local/bin/miner", "ERR_IMA_DIGEST_NOT_ALLOWED", sha("sha256", "miner").toString("hex")]]);
  assert.equal(readToken(stateDir), undefined, "the failing round leaves no token");
  const h = await api(svc.url, "GET", `/v1/hosts/${HOST}`, undefined, svc.admin);
  assert.equal(h.body.health, "unhealthy", JSON.stringify(h.body));

  // nothing new since: the host stays failing for this boot
  r = await round();
  assert.deepEqual([r.verdict, r.code, r.ima?.covered, r.ima?.nextIndex], ["fail", "ERR_IMA_DIGEST_NOT_ALLOWED", 0, 9]);

  // another service instance continues from the state in the database: nothing new, still failing
  const second = await startService(dir, db, { admin: svc.admin });
  try {
    const r2 = await attest(host.tpm, new ServiceClient({ url: second.url }), { stateDir, eventLog: logPath, ima: { path: listPath(), progress } });
    assert.deepEqual([r2.verdict, r2.code, r2.ima?.covered, r2.ima?.entriesVerified], ["fail", "ERR_IMA_DIGEST_NOT_ALLOWED", 0, 9]);
  } finally {
    await second.close();
  }
  // a restarted agent knows no index: it sends no entries, and the stored state says nothing is new
  const restarted: { nextIndex?: number } = {};
  const r3 = await attest(host.tpm, service, { stateDir, eventLog: logPath, ima: { path: listPath(), progress: restarted } });
  assert.deepEqual([r3.verdict, r3.ima?.covered, r3.ima?.entriesVerified, restarted.nextIndex], ["fail", 0, 9, 9]);
});

test("verify quote --ima: a tpm2-tools quote over PCR 10 that tpm2_pcrextend extended with a real list", async () => {
  const list = parseImaList(readFileSync(FIXTURES + "ubuntu-ima-ng-sha1.bin"));
  const p = (n: string) => join(dir, n);
  const t = (tool: string, args: string[]) => tpm2(bare, tool, args, { cwd: dir });
  for (let i = 0; i < 40; i++) {
    const e = list.entries[i];
    await t("tpm2_pcrextend", [`10:sha1=${e.templateHash.toString("hex")},sha256=${hash("sha256", e.hashed, "hex")}`]);
  }
  await t("tpm2_createek", ["-G", "rsa", "-c", p("ek.ctx"), "-u", p("ek.pub")]);
  await t("tpm2_createak", ["-C", p("ek.ctx"), "-c", p("ak.ctx"), "-G", "rsa", "-g", "sha256", "-s", "rsassa", "-u", p("ak.pub"), "-n", p("ak.name"), "-r", p("ak.priv")]);
  await t("tpm2_quote", ["-c", p("ak.ctx"), "-l", "sha1:10+sha256:10", "-q", "abcd", "-g", "sha256", "-m", p("q.msg"), "-s", p("q.sig"), "-o", p("q.pcrs")]);
  const base = ["verify", "quote", "--ak", p("ak.pub"), "--attest", p("q.msg"), "--signature", p("q.sig"), "--nonce", "abcd", "--pcrs", p("q.pcrs"), "--json"];
  // the whole list was read after the quote: the first 40 entries are covered, the rest came later
  const ok = await cli([...base, "--ima", FIXTURES + "ubuntu-ima-ng-sha1.bin"]);
  assert.equal(ok.code, 0, out(ok));
  assert.deepEqual([ok.json().ima.covered, ok.json().ima.entries], [40, 826]);
  assert.deepEqual(ok.json().ima.workarounds, []);
  // reordered entries replay to another value
  const swapped = readFileSync(FIXTURES + "ubuntu-ima-ng-sha1.ascii", "utf8").split("\n");
  [swapped[3], swapped[4]] = [swapped[4], swapped[3]];
  writeFileSync(p("swapped.ascii"), swapped.join("\n"));
  const bad = await cli([...base, "--ima", p("swapped.ascii")]);
  assert.equal(bad.code, 1, out(bad));
  assert.equal(bad.json().code, "ERR_IMA_REPLAY_MISMATCH");
});
