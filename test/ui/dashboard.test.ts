/**
 * The dashboard in Debian's headless chromium against the real service: a fleet built by the real
 * agent flow on swtpm hosts (identify → hosts add → credential activation → attestation with a real
 * event log), real clicks, assertions on what the pages show, screenshots under test-artifacts/.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import type { Page } from "playwright-core";
import { activate, attest, identify, ServiceClient } from "../../src/agent/index.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { learnSoftware } from "../../src/policy/software.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { addPolicy, api, readLog, startLogHost, startService, trustSwtpmCa, type LogHost, type Service } from "../e2e/harness.js";
import { ARTIFACTS, launchBrowser } from "../helpers/browser.js";
import { attestConfig } from "../../src/attest/config.js";
import { checkpointAudit } from "../../src/tokens/audit.js";

const RHEL = "rhel8-gce-uefi.bin";
const LAPTOP = "laptop-startup-locality3.bin";
const PCRS = [0, 1, 2, 3, 4, 5, 6, 7];

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-ui-"));
const db = join(dir, "tpmtrust.db");
let s: Service;
let auditor: string;
const tpms: LogHost[] = [];
let browser: Awaited<ReturnType<typeof launchBrowser>>;

/** One host through the real agent: identify, register with the service, activate its AK, optionally attest. */
async function enrol(name: string, hardwareClass: string, o: { attest: boolean }): Promise<void> {
  const h = await startLogHost(RHEL);
  tpms.push(h);
  if (tpms.length === 1) await trustSwtpmCa(s, h.swtpm);
  const service = new ServiceClient({ url: s.url });
  const added = await api(s.url, "POST", "/v1/hosts", { name, hardwareClass, identity: (await identify(h.tpm)).identity }, s.admin);
  assert.equal(added.status, 201, JSON.stringify(added.body));
  const stateDir = join(dir, name);
  await activate(h.tpm, service, { stateDir });
  if (!o.attest) return;
  const logFile = join(dir, `${name}.log`);
  writeFileSync(logFile, h.log);
  await attest(h.tpm, service, { stateDir, eventLog: logFile, eventLogRequired: true });
}

before(async () => {
  s = await startService(dir, db, { attest: { sweepMs: 0 } });
  auditor = (await s.server.store.adminTokens.create({ at: Date.now(), role: "auditor", label: "ui test" })).token;
  const rhel = parseEventLog(readLog(RHEL));
  for (const [kind, name, cls, doc] of [
    ["baseline", "gce", "gce-n1", learnBaseline("gce", [rhel], PCRS)],
    ["software", "rhel8", "gce-n1", learnSoftware("rhel8", [rhel])],
    ["baseline", "kiosk", "kiosk", learnBaseline("kiosk", [parseEventLog(readLog(LAPTOP))], PCRS)],
  ] as const) {
    const r = await addPolicy(s, kind, name, cls, doc);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  await enrol("gce-web-01", "gce-n1", { attest: true });
  await enrol("gce-web-02", "gce-n1", { attest: true });
  await enrol("kiosk-17", "kiosk", { attest: true }); // a RHEL machine judged by a laptop's baseline
  await enrol("gce-web-03", "gce-n1", { attest: false });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const h of tpms) await h.close();
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function newPage(): Promise<Page> {
  const page = await browser.context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("close", () => assert.deepEqual(errors, [], "no script errors on the page"));
  return page;
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${s.url}/ui/#/fleet`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Fleet", exact: true }).waitFor();
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `ui-${name}.png`), fullPage: true });
const rows = (page: Page, label: string) => page.locator(`table[aria-label="${label}"] tbody tr`);

test("sign-in refuses an unknown token and keeps a valid one for the tab only", async () => {
  const page = await newPage();
  await page.goto(`${s.url}/ui`);
  await page.getByLabel("API token").fill("tpmtrust_not-a-real-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "ERR_UNAUTHENTICATED" }).waitFor();
  assert.match(await page.getByRole("alert").innerText(), /unknown or revoked/);
  await shot(page, "signin-refused");

  await page.getByLabel("API token").fill(s.admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  // something is missing (no CA, no key provider or cluster): the first page is the checklist
  await page.getByRole("heading", { name: "Status", exact: true }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("tpmtrust.token")), s.admin);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  await page.reload();
  await page.getByRole("heading", { name: "Status", exact: true }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("tpmtrust.token")), null);
  await page.close();
});

test("the status checklist is the first page while something is missing: each item with its state and fix, as GET /v1/status says", async () => {
  const page = await newPage();
  await page.goto(`${s.url}/ui/`);
  await page.getByLabel("API token").fill(auditor);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Status", exact: true }).waitFor();
  const report = (await api(s.url, "GET", "/v1/status", undefined, auditor)).body as { ok: boolean; items: { id: string; state: string; fix?: string }[] };
  assert.equal(report.ok, false);
  const table = rows(page, "checklist");
  assert.equal(await table.count(), report.items.length);
  const row = (id: string) => page.locator(`table[aria-label="checklist"] tbody tr[data-key="${id}"]`);
  assert.equal(report.items.find((i) => i.id === "trust.cas")!.state, "ok");
  assert.match(await row("trust.cas").innerText(), /OK/);
  assert.equal(report.items.find((i) => i.id === "ca")!.state, "missing");
  assert.match(await row("ca").innerText(), /missing[\s\S]*tpmtrust ca init/);
  assert.equal(report.items.find((i) => i.id === "hosts")!.state, "failing"); // kiosk-17 is unhealthy
  assert.match(await row("hosts").innerText(), /failing[\s\S]*2 healthy, 1 unhealthy, 1 not attested yet/);
  assert.match(await row("policy.gce-n1").innerText(), /OK[\s\S]*1 baseline\(s\), 1 accepted software/);
  await shot(page, "status");
  await page.getByRole("link", { name: "Fleet" }).click();
  await page.getByRole("heading", { name: "Fleet", exact: true }).waitFor();
  await page.close();
});

test("fleet overview: hosts by health, failure reasons, last attestation; filter by health", async () => {
  const page = await newPage();
  await signIn(page, s.admin);
  const count = (k: string) => page.locator(`.tile [data-health="${k}"]`).innerText();
  assert.equal(await count("healthy"), "2");
  assert.equal(await count("unhealthy"), "1");
  assert.equal(await count("unknown"), "1");
  assert.equal(await rows(page, "hosts").count(), 4);

  const reasons = rows(page, "failure reasons");
  assert.equal(await reasons.count(), 1);
  assert.match(await reasons.first().innerText(), /ERR_POLICY_FAILED\s+1\s+kiosk-17/);

  const kiosk = page.locator('table[aria-label="hosts"] tr[data-key="kiosk-17"]');
  assert.match(await kiosk.innerText(), /kiosk\s+unhealthy\s+ERR_POLICY_FAILED\s+\d+ (s|min) ago\s+ek-cert\s+1/);
  assert.match(await page.locator('tr[data-key="gce-web-03"]').innerText(), /unknown\s+never/);
  await shot(page, "fleet");

  // the service filters: each change redraws the list when its answer is in
  const drawn = () => page.locator('[data-state="ready"] table[aria-label="hosts"]').waitFor();
  await page.getByRole("button", { name: /1\s+unhealthy/ }).click();
  await drawn();
  assert.equal(await rows(page, "hosts").count(), 1);
  await page.getByRole("button", { name: /1\s+unhealthy/ }).click();
  await drawn();
  await page.getByLabel("filter hosts").fill("gce-web");
  await drawn();
  assert.equal(await rows(page, "hosts").count(), 3);
  await page.close();
});

test("host detail: EK and its trust method, AK, timeline, and the event-log diff of the failure", async () => {
  const page = await newPage();
  await signIn(page, s.admin);
  await page.getByRole("table", { name: "hosts" }).getByRole("link", { name: "kiosk-17" }).click();
  await page.getByRole("heading", { name: /kiosk-17/ }).waitFor();
  const host = (await api(s.url, "GET", "/v1/hosts/kiosk-17", undefined, s.admin)).body;
  const main = page.locator("main");
  assert.match(await main.innerText(), /EK trusted by\s+ek-cert/);
  const eks = rows(page, "endorsement keys");
  assert.equal(await eks.count(), host.eks.length);
  assert.match(await eks.first().innerText(), new RegExp(`${host.eks[0].ekHash.slice(0, 24)}…`));
  assert.equal(await rows(page, "attestation keys").count(), 1);
  assert.match(await rows(page, "attestation keys").first().innerText(), new RegExp(host.aks[0].nameHex.slice(0, 32)));

  const timeline = rows(page, "attestations");
  assert.equal(await timeline.count(), 1);
  assert.match(await timeline.first().innerText(), /fail\s+ERR_POLICY_FAILED/);
  // the newest attestation failed, so its diff is open; the table lists every difference the API recorded
  const [recorded] = (await api(s.url, "GET", "/v1/hosts/kiosk-17/attestations", undefined, s.admin)).body;
  const kiosk = recorded.diff.find((d: { name: string }) => d.name === "kiosk");
  const diffRows = rows(page, "differences of baseline kiosk");
  await diffRows.first().waitFor();
  assert.equal(await diffRows.count(), kiosk.diffs.length);
  assert.match(await page.locator("#attestation-detail").innerText(), /baseline “kiosk” v1 \(policy version v2\) failed/);
  assert.match(await page.locator("#attestation-detail").innerText(), /Policy version passed\s+none \(tried: v2\)/);
  assert.ok((await diffRows.first().innerText()).includes(kiosk.diffs[0].meaning));
  await shot(page, "host-failed");

  await page.goto(`${s.url}/ui/#/hosts/gce-web-01`);
  await page.getByRole("heading", { name: /gce-web-01/ }).waitFor();
  await rows(page, "attestations").first().click();
  await page.locator("#attestation-detail").getByText("PCRs the log explains").waitFor();
  assert.match(await page.locator("#attestation-detail").innerText(), /Policies\s+baseline gce v1, software rhel8 v1/);
  assert.match(await page.locator("#attestation-detail").innerText(), /Policy version passed\s+v2/);
  await page.close();
});

test("trust: an admin adds and removes an allow-list entry; labels are shown as text, never markup", async () => {
  const page = await newPage();
  await signIn(page, s.admin);
  await page.getByRole("link", { name: "Trust", exact: true }).click();
  await page.getByRole("heading", { name: "Trust" }).waitFor();
  const cas = rows(page, "EK certificate authorities");
  assert.equal(await cas.count(), 2);
  assert.match(await page.locator("main").innerText(), /EKROOT\s+.*swtpm-localca-rootca/);

  const hash = "ab".repeat(32);
  const label = `<img src=x onerror="document.title='pwned'"> rack 4`;
  await page.getByLabel("EK hash").fill(hash.toUpperCase());
  await page.getByLabel("label").fill(label);
  await page.getByRole("button", { name: "Add to allow-list" }).click();
  const row = page.locator(`table[aria-label="allow-list"] tr[data-key="${hash}"]`);
  await row.waitFor();
  assert.ok((await row.innerText()).includes(label));
  assert.equal(await page.locator("main img").count(), 0);
  assert.notEqual(await page.title(), "pwned");
  const stored = (await api(s.url, "GET", "/v1/trust/allowlist", undefined, s.admin)).body;
  assert.deepEqual(stored.map((e: { ekHash: string; label: string }) => [e.ekHash, e.label]), [[hash, label]]);
  await shot(page, "trust");

  page.once("dialog", (d) => d.accept());
  await row.getByRole("button", { name: "Remove" }).click();
  await row.waitFor({ state: "detached" });
  assert.deepEqual((await api(s.url, "GET", "/v1/trust/allowlist", undefined, s.admin)).body, []);

  // a bad hash: the API's problem+json is shown next to the form
  await page.getByLabel("EK hash").evaluate((el: HTMLInputElement) => el.removeAttribute("pattern"));
  await page.getByLabel("EK hash").fill("12345");
  await page.getByRole("button", { name: "Add to allow-list" }).click();
  await page.getByRole("alert").filter({ hasText: "ERR_VALIDATION" }).waitFor();
  await page.close();
});

test("policies: baselines, accepted software, code integrity; a policy's document opens", async () => {
  const page = await newPage();
  await signIn(page, s.admin);
  await page.getByRole("link", { name: "Policies", exact: true }).click();
  await page.getByRole("heading", { name: "TPM baselines (2)" }).waitFor();
  assert.equal(await rows(page, "TPM baselines").count(), 2);
  assert.equal(await rows(page, "Accepted software").count(), 1);
  assert.match(await page.getByText("No code integrity.").innerText(), /No code integrity/);
  await rows(page, "TPM baselines").filter({ hasText: "gce" }).click();
  await page.getByRole("heading", { name: /baseline “gce” v1/ }).waitFor();
  const doc = JSON.parse(await page.locator("#policy-detail pre.json").innerText());
  assert.equal(doc.name, "gce");
  assert.deepEqual(Object.keys(doc.pcrs).map(Number), PCRS);
  await page.getByRole("button", { name: "Disable policy" }).waitFor();
  await page.close();
});

test("audit log: chain intact, entries newest first with filters; a tampered row shows where the chain breaks", async () => {
  const page = await newPage();
  await signIn(page, s.admin);
  await page.getByRole("link", { name: "Audit log", exact: true }).click();
  await page.locator(".chain-ok").waitFor();
  // a checkpoint binds the entries: an edit after it shows
  await checkpointAudit(s.server.store, attestConfig({}), Date.now());
  const head = await s.server.store.audit.head();
  await page.reload();
  await page.locator(".chain-ok").waitFor();
  assert.match(await page.locator("#chain-status").innerText(), new RegExp(`All ${head.seq} entries verify; \\d+ checkpointed`));
  const entries = rows(page, "audit entries");
  assert.equal(await entries.first().getAttribute("data-key"), String(head.seq));
  await page.getByLabel("filter by action").fill("attestation.verdict");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="audit entries"] tbody tr').length === 3);
  assert.match(await entries.first().innerText(), /host:kiosk-17\s+attestation\.verdict\s+kiosk-17\s+failure/);
  await shot(page, "audit");

  const raw = new SqliteDatabase(db);
  raw.prepare("UPDATE audit SET actor = 'someone-else' WHERE seq = 3").run();
  raw.close();
  await page.reload();
  await page.locator(".chain-broken").waitFor();
  assert.match(await page.locator("#chain-status").innerText(), /breaks at entry #3.*2 entries before it verify/);
  await shot(page, "audit-broken");
  await page.close();
});

test("certificates, key providers and provisioning: what their APIs hold, with write controls for admins", async () => {
  const ok = async (method: string, path: string, body: unknown) => {
    const r = await api(s.url, method, path, body, s.admin);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  };
  await ok("POST", "/v1/keys/providers", { name: "vault" });
  await ok("PUT", "/v1/keys/clusters/gce", { hardwareClasses: ["gce-n1"], providers: ["vault"] });
  await ok("PUT", "/v1/provisioning/hubs/hub-1", { hostname: "hub-1.example.net" });
  const device = (await api(s.url, "GET", "/v1/hosts/gce-web-03", undefined, s.admin)).body;
  assert.ok(device.eks.length > 0);
  const page = await newPage();
  await signIn(page, s.admin);

  await page.getByRole("link", { name: "Certificates", exact: true }).click();
  await page.getByRole("heading", { name: /^Issued \(\d+\)$/ }).waitFor();
  const issued = (await api(s.url, "GET", "/v1/ca/certs?all=true", undefined, s.admin)).body;
  assert.ok(issued.length >= 4, "the agents' AK certificates");
  assert.equal(await rows(page, "certificates").count(), issued.length);
  assert.match(await rows(page, "certificates").first().innerText(), /AK certificate.*AK bound by credential activation\s+\d+ (s|min) ago\s+in 365 d\s+valid/s);
  await page.getByRole("button", { name: "Revoke" }).first().waitFor();
  await shot(page, "certificates");

  await page.getByRole("link", { name: "Key providers", exact: true }).click();
  const vault = page.locator('table[aria-label="key providers"] tr[data-key="vault"]');
  await vault.waitFor();
  assert.match(await vault.innerText(), /vault\s+local.*v1.*gce.*enabled/s);
  assert.match(await rows(page, "clusters").first().innerText(), /gce\s+class gce-n1\s+vault/);
  page.once("dialog", (d) => d.accept());
  await vault.getByRole("button", { name: "Disable" }).click();
  await page.locator('table[aria-label="key providers"] tr[data-key="vault"]').getByText("disabled").waitFor();
  assert.ok((await api(s.url, "GET", "/v1/keys/providers/vault", undefined, s.admin)).body.disabledAt);
  await shot(page, "keys");

  await page.getByRole("link", { name: "Provisioning", exact: true }).click();
  await page.getByRole("heading", { name: "Linked hubs (1)" }).waitFor();
  assert.match(await rows(page, "hubs").first().innerText(), /hub-1\s+hub-1\.example\.net\s+1/);
  assert.match(await page.locator("main").innerText(), /ID scope \S+: devices register at PUT \//);
  await shot(page, "provisioning");
  await page.close();
});

test("a page whose API the server does not offer says so (an older server: no /v1/keys in its OpenAPI document)", async () => {
  const page = await newPage();
  await page.route(`${s.url}/openapi.json`, async (route) => {
    const r = await route.fetch();
    const doc = await r.json();
    for (const p of Object.keys(doc.paths)) if (p.startsWith("/v1/keys")) delete doc.paths[p];
    await route.fulfill({ response: r, json: doc });
  });
  await signIn(page, s.admin);
  await page.getByRole("link", { name: "Key providers", exact: true }).click();
  await page.getByRole("status").filter({ hasText: "Key providers: not available on this server." }).waitFor();
  assert.equal(await page.locator("main table").count(), 0);
  await page.close();
});

test("an auditor sees everything read-only: no write controls anywhere", async () => {
  const page = await newPage();
  await signIn(page, auditor);
  assert.match(await page.locator(".who").innerText(), /auditor · read-only/);
  for (const path of ["fleet", "hosts/kiosk-17", "trust", "policies", "certificates", "keys", "provisioning", "audit"]) {
    await page.goto(`${s.url}/ui/#/${path}`);
    await page.locator("main h1").waitFor();
    await page.waitForLoadState("networkidle");
    assert.equal(await page.locator("main form:not(.inline:has(input[name=actor])) button, main .action button").count(), 0, `${path}: no write buttons`);
  }
  const id = (await api(s.url, "GET", "/v1/policies", undefined, s.admin)).body[0].id;
  await page.goto(`${s.url}/ui/#/policies/${id}`);
  await page.locator("#policy-detail pre.json").waitFor();
  assert.equal(await page.getByRole("button", { name: "Disable policy" }).count(), 0);
  // and the API refuses an auditor's write even if a page offered one
  const denied = await api(s.url, "POST", "/v1/trust/allowlist", { ekHash: "cd".repeat(32) }, auditor);
  assert.equal(denied.status, 403);
  assert.equal(denied.body.code, "ERR_FORBIDDEN");
  await shot(page, "auditor-trust");
  await page.close();
});
