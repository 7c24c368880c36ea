/**
 * The dashboard's host page shows the host's runtime integrity (IMA) state, not only per attestation:
 * the boot, entries verified, the last verified index and the last failing entry (index, path,
 * digest, reason code), as GET /v1/hosts/{name} has them. Debian's headless chromium against the real
 * service; the host attests in software (test/helpers/ima-fleet.ts) through the real HTTP API.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { ARTIFACTS, launchBrowser } from "../helpers/browser.js";
import { addImaClass, IMA_BOOT, IMA_LATER, imaEvidence, imaEvil, imaHost, imaList, type ImaRound } from "../helpers/ima-fleet.js";
import type { SoftHost } from "../helpers/software-fleet.js";

const CLASS = "ima-ui";
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-ui-ima-"));
let s: RunningServer;
let admin: string;
let browser: Awaited<ReturnType<typeof launchBrowser>>;

async function call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${s.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

async function round(h: SoftHost, o: ImaRound): Promise<any> {
  const c = await call("POST", "/v1/attestations/challenge", { akNameHex: h.akName.toString("hex") });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  const r = await call("POST", "/v1/attestations", imaEvidence(h, Buffer.from(c.body.nonceHex, "hex"), o));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

const evil = imaEvil("/usr/local/bin/miner");
const boot = [...IMA_BOOT, IMA_LATER[0], evil, IMA_LATER[1]];

before(async () => {
  s = await startServer({ db: join(dir, "tpmtrust.db"), listen: "127.0.0.1:0", logger: false, adminTokenFile: join(dir, "admin-token"), attest: { sweepMs: 0 } });
  admin = readFileSync(s.adminTokenFile!, "utf8").trim();
  await addImaClass(s.store, CLASS);
  const clean = await imaHost(s.store, "ima-clean", CLASS);
  assert.equal((await round(clean, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })).verdict, "pass");
  // the whole list first, then an increment with a file outside the policy among allowed ones
  const miner = await imaHost(s.store, "ima-miner", CLASS);
  assert.equal((await round(miner, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })).verdict, "pass");
  const r = await round(miner, { extended: boot, sent: imaList(boot.slice(IMA_BOOT.length)), startIndex: IMA_BOOT.length });
  assert.deepEqual([r.verdict, r.code], ["fail", "ERR_IMA_DIGEST_NOT_ALLOWED"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function hostPage(name: string): Promise<Page> {
  const page = await browser.context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("close", () => assert.deepEqual(errors, [], "no script errors on the page"));
  await page.goto(`${s.url}/ui/#/hosts/${name}`);
  await page.getByLabel("API token").fill(admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Runtime integrity (IMA)" }).waitFor();
  return page;
}

const card = (page: Page) => page.locator("section.card").filter({ has: page.getByRole("heading", { name: "Runtime integrity (IMA)" }) });

test("host page: the IMA state of the boot and the last failing entry, as the host API has them", async () => {
  const api = (await call("GET", "/v1/hosts/ima-miner", undefined, admin)).body.ima;
  assert.deepEqual([api.resetCount, api.entriesVerified, api.lastVerifiedIndex, api.failures, api.lastFailure.index], [7, boot.length, boot.length - 1, 1, IMA_BOOT.length + 1]);
  const page = await hostPage("ima-miner");
  const text = await card(page).innerText();
  assert.match(text, /Boot \(TPM reset count\)\s+7/);
  assert.match(text, new RegExp(`Entries verified\\s+${boot.length}`));
  assert.match(text, new RegExp(`Last verified index\\s+${boot.length - 1}`));
  assert.match(text, /Failing entries\s+failing 1 in this boot/);
  const failure = page.locator('table[aria-label="last IMA failure"] tbody tr');
  assert.equal(await failure.count(), 1);
  const cells = await failure.first().locator("td").allInnerTexts();
  assert.deepEqual([cells[0], cells[1], cells[3]], [String(IMA_BOOT.length + 1), "/usr/local/bin/miner", "ERR_IMA_DIGEST_NOT_ALLOWED"]);
  // the digest is shortened; its full value is the tooltip
  assert.equal(await failure.first().locator("td").nth(2).locator("span").getAttribute("title"), api.lastFailure.digest);
  assert.ok(api.lastFailure.digest.startsWith("sha256:"), api.lastFailure.digest);
  assert.equal(cells[4], api.lastFailure.reason);
  await page.screenshot({ path: join(ARTIFACTS, "ui-host-ima-failed.png"), fullPage: true });
  await page.close();
});

test("host page: a host whose every entry passed shows its progress and no failure", async () => {
  const page = await hostPage("ima-clean");
  const text = await card(page).innerText();
  assert.match(text, new RegExp(`Entries verified\\s+${IMA_BOOT.length}`));
  assert.match(text, /Failing entries\s+ok 0 in this boot/);
  assert.match(text, /No IMA failure in this boot\./);
  await page.close();
});
