/**
 * A fleet of 100,000 hosts: the list API pages, sorts and filters in the service (keyset cursors in
 * a Link header, the total in X-Total-Count, 304 for an unchanged page), and the dashboard's fleet
 * page, in Debian's headless chromium, shows the first page and the counts in under a second, with
 * the service's sweeps running: every tenth host has an allow-listed EK for the trust sweep to judge.
 * The hosts are written straight into the service's SQLite database: what is measured is reading them.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import SqliteDatabase from "better-sqlite3";
import { api, startService, type Service } from "../e2e/harness.js";
import { ARTIFACTS, launchBrowser } from "../helpers/browser.js";
import { newKeyPair } from "../../src/crypto/keygen.js";
import { ekTemplate } from "../../src/tpm/commands/index.js";
import { TPM_ALG } from "../../src/tpm/constants.js";
import { encodeTpmtPublic, objectName } from "../../src/tpm/structures.js";
import { ekHash } from "../../src/verify/ek/index.js";

const HOSTS = 100_000;
const REASONS = ["ERR_POLICY_FAILED", "ERR_EK_NOT_TRUSTED", "ERR_SILENT"];
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-fleet-"));
const db = join(dir, "tpmtrust.db");
let s: Service;
let browser: Awaited<ReturnType<typeof launchBrowser>>;

/** Host i: every 13th unhealthy (reasons in turn), every 29th never attested, the rest healthy. */
function health(i: number): { health: string; reason: string | null; last: number | null } {
  if (i % 29 === 0) return { health: "unknown", reason: null, last: null };
  if (i % 13 === 0) return { health: "unhealthy", reason: REASONS[i % 3], last: 1_700_000_000_000 + i };
  return { health: "healthy", reason: null, last: 1_700_000_000_000 + ((i * 7919) % HOSTS) * 1000 };
}
const hostName = (i: number) => `node-${String(i).padStart(6, "0")}.dc${i % 4}.example`;
/** Host i has an EK (a v1 host, its EK hash allow-listed) when i % 10 is 5. */
const hasEk = (i: number) => i % 10 === 5;
const ekHashes = new Map<number, string>();

/** An ECC P-256 EK's TPMT_PUBLIC, Name and EK hash. */
function softEk(): { public: Buffer; name: Buffer; hash: string } {
  // not generateKeyPairSync: its keys can deadlock an export (src/crypto/keygen.ts)
  const { publicKey } = newKeyPair("ecdsa-p256");
  const jwk = publicKey.export({ format: "jwk" });
  const t = ekTemplate("ecc-p256");
  if (t.type !== TPM_ALG.ECC) throw new Error("an ECC template");
  const pub = { ...t, unique: { x: Buffer.from(jwk.x!, "base64url"), y: Buffer.from(jwk.y!, "base64url") } };
  return { public: encodeTpmtPublic(pub), name: objectName(pub), hash: ekHash(publicKey) };
}

before(async () => {
  // the periodic sweep runs (every 5 s): its first trust sweep judges the 10,000 EKs
  s = await startService(dir, db);
  const d = new SqliteDatabase(db);
  d.pragma("busy_timeout = 10000");
  const insert = d.prepare(
    `insert into hosts (name, hardware_class, policy_version, trust_method, health, health_reason, health_changed_at, last_attestation_at, deadline_at, tags, platform, created_at, updated_at, disabled_at)
     values (?, ?, ?, ?, ?, ?, null, ?, null, '[]', null, 1, 1, null)`,
  );
  const insertEk = d.prepare("insert into host_eks (ek_name, host_name, public, cert) values (?, ?, ?, null)");
  const allow = d.prepare("insert into ek_allowlist (ek_hash, label, source, added_at) values (?, null, 'test', 1)");
  d.transaction(() => {
    for (let i = 0; i < HOSTS; i++) {
      const x = health(i);
      insert.run(hostName(i), i % 2 ? "dl380-g10" : "r650", hasEk(i) ? "v1" : "v2", hasEk(i) ? "ek-allowlist" : "ek-cert", x.health, x.reason, x.last);
      if (!hasEk(i)) continue;
      const ek = softEk();
      insertEk.run(ek.name.toString("hex"), hostName(i), ek.public.toString("hex"));
      allow.run(ek.hash);
      ekHashes.set(i, ek.hash);
    }
  })();
  // one host with a long timeline: 120 attestations, one a second
  const att = d.prepare("insert into attestations (id, host_name, at, verdict, reason_code, ak_name, pcr_digest, diff, details) values (?, ?, ?, ?, ?, null, null, null, null)");
  d.transaction(() => {
    for (let i = 0; i < 120; i++) att.run(randomUUID(), hostName(7), 1_700_000_000_000 + i * 1000, i % 10 ? "pass" : "fail", i % 10 ? null : "ERR_POLICY_FAILED");
  })();
  d.close();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${s.admin}`, ...headers } });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : undefined };
}
const nextOf = (h: Headers) => /<([^>]+)>;\s*rel="next"/.exec(h.get("link") ?? "")?.[1];

test("every host is served exactly once, in order, walking the cursors of the largest page", async () => {
  const seen: string[] = [];
  let path: string | undefined = "/v1/hosts?limit=1000";
  let pages = 0;
  while (path) {
    const r = await get(path);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.headers.get("x-total-count"), String(HOSTS));
    seen.push(...r.body.map((x: { name: string }) => x.name));
    path = nextOf(r.headers);
    pages++;
  }
  assert.equal(pages, HOSTS / 1000);
  assert.equal(new Set(seen).size, HOSTS);
  assert.deepEqual(seen, [...seen].sort());
});

test("sorting by last attestation pages by key, never-attested hosts first, ties by name", async () => {
  let r = await get("/v1/hosts?order=-lastAttestationAt&limit=500");
  const newest = r.body.map((x: { lastAttestationAt: number | null }) => x.lastAttestationAt);
  assert.deepEqual(newest, [...newest].sort((a, b) => b - a));
  const r2 = await get(nextOf(r.headers)!);
  assert.ok(r2.body[0].lastAttestationAt <= newest.at(-1));

  r = await get("/v1/hosts?order=lastAttestationAt&limit=1000&health=unknown");
  assert.equal(r.headers.get("x-total-count"), String(Math.floor((HOSTS - 1) / 29) + 1));
  assert.ok(r.body.every((x: { lastAttestationAt: number | null; health: string }) => x.lastAttestationAt === null && x.health === "unknown"));
  const names = r.body.map((x: { name: string }) => x.name);
  assert.deepEqual(names, [...names].sort());
});

test("filters are the service's: health, class and a case-insensitive substring, with LIKE's wildcards taken literally", async () => {
  let r = await get("/v1/hosts?health=unhealthy&limit=10");
  assert.equal(r.status, 200);
  assert.ok(r.body.every((x: { health: string }) => x.health === "unhealthy"));
  r = await get(`/v1/hosts?q=${encodeURIComponent("NODE-012345")}`);
  assert.deepEqual(r.body.map((x: { name: string }) => x.name), [hostName(12345)]);
  r = await get(`/v1/hosts?q=${encodeURIComponent("node-_1234")}`);
  assert.equal(r.headers.get("x-total-count"), "0", "_ is not a wildcard");
  r = await get(`/v1/hosts?q=${encodeURIComponent("%")}`);
  assert.equal(r.headers.get("x-total-count"), "0", "% is not a wildcard");
  r = await get("/v1/hosts?hardwareClass=r650&q=dc1&limit=1");
  assert.equal(r.headers.get("x-total-count"), "0", "even hosts are in dc0 and dc2");
});

test("cursors are checked: another order's cursor, a forged one and an oversized page are refused with ERR_VALIDATION", async () => {
  const r = await get("/v1/hosts?limit=5");
  const cursor = new URL(nextOf(r.headers)!, "http://x").searchParams.get("cursor")!;
  for (const path of [
    `/v1/hosts?order=-name&cursor=${cursor}`,
    `/v1/hosts?cursor=${Buffer.from('["name",[{"x":1},"a"]]').toString("base64url")}`,
    `/v1/hosts?cursor=${Buffer.from("not json").toString("base64url")}`,
    `/v1/hosts?order=lastAttestationAt&cursor=${Buffer.from('["lastAttestationAt",["not a time","a"]]').toString("base64url")}`,
    `/v1/hosts?cursor=${Buffer.from('["name",[1,"a"]]').toString("base64url")}`,
    "/v1/hosts?cursor=../../etc",
    "/v1/hosts?limit=0",
    `/v1/hosts/${hostName(1)}/attestations?cursor=${cursor}`,
  ]) {
    const x = await get(path);
    assert.equal(x.status, 400, path);
    assert.equal(x.body.code, "ERR_VALIDATION", path);
  }
});

test("a page is at most 1,000 hosts, whatever is asked", async () => {
  const r = await get("/v1/hosts?limit=5000");
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 1000);
});

test("an unchanged page answers 304 to its ETag; a change gives a new ETag", async () => {
  const a = await get("/v1/hosts/summary");
  assert.equal(a.status, 200);
  assert.deepEqual(a.body.byHealth, { healthy: HOSTS - a.body.byHealth.unhealthy - a.body.byHealth.unknown, unhealthy: a.body.byHealth.unhealthy, unknown: Math.floor((HOSTS - 1) / 29) + 1 });
  assert.deepEqual(a.body.unhealthyReasons.map((x: { reason: string }) => x.reason).sort(), [...REASONS].sort());
  const etag = a.headers.get("etag")!;
  assert.match(etag, /^W\/"/);
  assert.equal((await get("/v1/hosts/summary", { "if-none-match": etag })).status, 304);
  const removed = await api(s.url, "DELETE", `/v1/hosts/${hostName(13)}`, undefined, s.admin);
  assert.equal(removed.status, 204);
  const b = await get("/v1/hosts/summary", { "if-none-match": etag });
  assert.equal(b.status, 200);
  assert.notEqual(b.headers.get("etag"), etag);
  assert.equal(b.body.total, HOSTS - 1);
});

test("the fleet page shows 100,000 hosts' counts and first page in under a second while the trust sweep runs, and pages through the service", async (t) => {
  // revoking an EK starts a trust sweep over the 10,000 hosts with EKs at once
  const revoked = 15;
  const before = (await get("/v1/hosts/summary")).body.byHealth;
  const r = await api(s.url, "POST", "/v1/trust/revoked-eks", { ekHash: ekHashes.get(revoked) }, s.admin);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const page = await browser.context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${s.url}/ui/#/audit`);
  await page.getByLabel("API token").fill(s.admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Audit log", exact: true }).waitFor();
  // measured in the browser: from navigating to the fleet page until its counts and first page are drawn
  // (a string: the test's compiler would wrap named functions in a helper the page does not have)
  const ms: number = await page.evaluate(`new Promise((resolve) => {
    const t0 = performance.now();
    const drawn = () => document.querySelector('[data-state="ready"] table[aria-label="hosts"]') && document.querySelector(".tile [data-health]");
    new MutationObserver((_m, o) => { if (drawn()) { o.disconnect(); resolve(performance.now() - t0); } }).observe(document.body, { childList: true, subtree: true, attributes: true });
    location.hash = "#/fleet";
  })`);
  await page.screenshot({ path: join(ARTIFACTS, "ui-fleet-100k.png") });
  t.diagnostic(`fleet page with ${HOSTS - 1} hosts: ${Math.round(ms)} ms`);
  assert.ok(ms < 1000, `the fleet page took ${Math.round(ms)} ms`);
  assert.equal(await page.locator(".tile .n").first().innerText(), String(HOSTS - 1));
  const rows = page.locator('table[aria-label="hosts"] tbody tr');
  assert.equal(await rows.count(), 100);
  assert.match(await page.getByRole("navigation", { name: "host pages" }).innerText(), new RegExp(`1–100 of ${HOSTS - 1}`));

  await page.getByRole("button", { name: "Next page" }).click();
  await page.locator('[data-state="ready"]').waitFor();
  assert.match(await page.getByRole("navigation", { name: "host pages" }).innerText(), /101–200/);
  assert.equal(await rows.first().getAttribute("data-key"), hostName(101));

  await page.getByLabel("filter hosts").fill("node-099999");
  await page.locator('[data-state="ready"]').waitFor();
  assert.deepEqual(await rows.evaluateAll((r) => r.map((x) => x.getAttribute("data-key"))), [hostName(99999)]);
  assert.deepEqual(errors, []);
  await page.close();

  // the sweep turns the host with the revoked EK unhealthy, and only it
  let host = await get(`/v1/hosts/${hostName(revoked)}`);
  while (host.body.health !== "unhealthy") {
    await new Promise((res) => setTimeout(res, 50));
    host = await get(`/v1/hosts/${hostName(revoked)}`);
  }
  assert.equal(host.body.healthReason, "ERR_EK_NOT_TRUSTED");
  const after = (await get("/v1/hosts/summary")).body.byHealth;
  assert.deepEqual(after, { ...before, healthy: before.healthy - 1, unhealthy: before.unhealthy + 1 }, "no other host changed health");
});

test("a host's timeline pages back through the service: 50 newest, then older pages by cursor", async () => {
  const r = await get(`/v1/hosts/${hostName(7)}/attestations?limit=50`);
  assert.equal(r.body.length, 50);
  const r2 = await get(nextOf(r.headers)!);
  const r3 = await get(nextOf(r2.headers)!);
  assert.equal(nextOf(r3.headers), undefined);
  const all = [...r.body, ...r2.body, ...r3.body].map((a: { at: number }) => a.at);
  assert.equal(new Set(all).size, 120);
  assert.deepEqual(all, [...all].sort((a, b) => b - a));

  const page = await browser.context.newPage();
  await page.goto(`${s.url}/ui/#/hosts/${hostName(7)}`);
  await page.getByLabel("API token").fill(s.admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  const rows = page.locator('table[aria-label="attestations"] tbody tr, table[aria-label="older attestations"] tbody tr');
  await page.locator('table[aria-label="attestations"]').waitFor();
  assert.equal(await rows.count(), 50);
  for (const n of [100, 120]) {
    await page.getByRole("button", { name: "Older attestations" }).click();
    await page.waitForFunction((want) => document.querySelectorAll('table[aria-label="attestations"] tbody tr, table[aria-label="older attestations"] tbody tr').length === want, n);
  }
  assert.equal(await page.getByRole("button", { name: "Older attestations" }).count(), 0);
  await page.close();
});
