/**
 * The trust sweep at scale (issue #12 §2): it reads hosts a page at a time, skips hosts without an
 * EK, judges only the hosts whose cached evaluation does not already prove them, and after every
 * kind of trust change turns unhealthy exactly the hosts a full re-evaluation finds untrusted.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { webcrypto } from "node:crypto";
import { sweepTrust } from "../../src/attest/health.js";
import { isTpmTrustError } from "../../src/errors.js";
import { openStore, type Store } from "../../src/store/index.js";
import { requireHostEkTrust } from "../../src/trust/host-trust.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { decodeTpmtPublic } from "../../src/tpm/structures.js";
import { makeCa, makeLeaf, type Issued } from "../verify/ek/certgen.js";
import { FLEET_CLASS, seedHosts, softHost, type SoftHost } from "../helpers/software-fleet.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-sweep-"));
let clock = Date.now();
const now = () => clock;
let store: Store;
/** v2 hosts under the test EK root, over two sweep pages */
const fleet = Array.from({ length: 250 }, (_, i) => softHost(`fleet-${String(i).padStart(3, "0")}`));
/** v2 hosts whose certificates chain through an intermediate to a second root */
const vendor = Array.from({ length: 5 }, (_, i) => softHost(`vendor-${i}`));
/** v1 hosts trusted by their allow-listed EK hash */
const listed = Array.from({ length: 5 }, (_, i) => softHost(`listed-${i}`));
/** a v2 host under a root that expires soon */
const shortLived = softHost("short-lived");
let root2: Issued;
let intermediate2: Issued;
let intermediateId: string;

async function certFrom(issuer: Issued, h: SoftHost, notAfter?: Date): Promise<Buffer> {
  const spki = publicKeyFromTpmt(decodeTpmtPublic(h.ekPublic)).export({ type: "spki", format: "der" });
  const publicKey = await webcrypto.subtle.importKey("spki", spki, { name: "ECDH", namedCurve: "P-256" }, true, []);
  return (await makeLeaf({ issuer, publicKey, ...(notAfter ? { notAfter } : {}) })).der;
}

async function add(h: SoftHost, policyVersion: "v1" | "v2", cert: Buffer | null): Promise<void> {
  await store.hosts.add({ at: clock, name: h.name, hardwareClass: FLEET_CLASS, policyVersion, eks: [{ name: h.ekName, public: h.ekPublic, cert }] });
}

before(async () => {
  store = await openStore(join(dir, "t.db"));
  await seedHosts(store, fleet);
  root2 = await makeCa({ name: "CN=sweep vendor root", slot: 21 });
  intermediate2 = await makeCa({ name: "CN=sweep vendor CA", issuer: root2, slot: 22 });
  await store.trust.addCaCert("root", root2.der, root2.name, clock);
  intermediateId = (await store.trust.addCaCert("intermediate", intermediate2.der, intermediate2.name, clock)).fingerprint;
  for (const h of vendor) await add(h, "v2", await certFrom(intermediate2, h));
  for (const h of listed) {
    await store.trust.addAllowlist(h.ekHash, { at: clock });
    await add(h, "v1", null);
  }
  const soon = await makeCa({ name: "CN=short-lived root", slot: 23, notAfter: new Date(clock + 60_000) });
  await store.trust.addCaCert("root", soon.der, soon.name, clock);
  await add(shortLived, "v2", await certFrom(soon, shortLived, new Date(clock + 60_000)));
  // hosts without an EK: no trust configuration vouches for them, so no change to it concerns them
  for (const name of ["bare-1", "bare-2"]) await store.hosts.add({ at: clock, name, hardwareClass: FLEET_CLASS, policyVersion: "v2", eks: [] });
  for (const h of await store.hosts.list()) await store.hosts.setHealth(h.name, { health: "healthy", at: clock });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const ALL = 250 + 5 + 5 + 1;

/** The hosts a full evaluation (never the sweep's shortcuts) finds untrusted now, among those still healthy before the sweep. */
async function untrusted(names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    const h = (await store.hosts.get(name))!;
    // under another cache key: requireHostEkTrust evaluates afresh
    await requireHostEkTrust(store, { ...h, createdAt: h.createdAt + 0.5 }, clock).catch((e) => {
      if (!isTpmTrustError(e)) throw e;
      out.push(name);
    });
  }
  return out.sort();
}

const healthy = async () => (await store.hosts.list({ health: "healthy" })).map((h) => h.name).filter((n) => !n.startsWith("bare-"));

/** Sweeps and checks the sweep turned unhealthy exactly the hosts a full evaluation finds untrusted. */
async function sweepMatchesFullEvaluation(): Promise<{ judged: number; hosts: number; changed: string[] }> {
  const before = await healthy();
  const want = await untrusted(before);
  const r = await sweepTrust(store, now);
  const changed = r.changes.map((c) => c.host).sort();
  assert.deepEqual(changed, want);
  assert.ok(r.changes.every((c) => c.reason === "ERR_EK_NOT_TRUSTED" && c.health === "unhealthy"));
  return { judged: r.judged, hosts: r.hosts, changed };
}

test("a cold sweep judges every host with an EK, page by page, yielding to the event loop; hosts without an EK are not read", async () => {
  let ranDuring = false;
  let done = false;
  setImmediate(() => (ranDuring = !done));
  const r = await sweepMatchesFullEvaluation();
  done = true;
  assert.deepEqual(r, { judged: ALL, hosts: ALL, changed: [] });
  assert.ok(ranDuring, "the event loop turned while the sweep ran");
  assert.equal((await store.hosts.get("bare-1"))!.health, "healthy");
});

test("nothing changed, or trust only added: no host is judged again", async () => {
  assert.deepEqual(await sweepMatchesFullEvaluation(), { judged: 0, hosts: ALL, changed: [] });
  const extra = await makeCa({ name: "CN=another vendor root", slot: 24 });
  await store.trust.addCaCert("root", extra.der, extra.name, clock);
  await store.trust.addAllowlist(softHost("stranger").ekHash, { at: clock });
  assert.deepEqual(await sweepMatchesFullEvaluation(), { judged: 0, hosts: ALL, changed: [] });
});

test("an EK revoked, an allow-list entry removed: only those hosts are judged, and turned unhealthy", async () => {
  await store.trust.revokeEk(listed[0].ekHash, { at: clock });
  assert.deepEqual(await sweepMatchesFullEvaluation(), { judged: 1, hosts: ALL, changed: ["listed-0"] });
  await store.trust.removeAllowlist(listed[1].ekHash);
  assert.deepEqual(await sweepMatchesFullEvaluation(), { judged: 1, hosts: ALL - 1, changed: ["listed-1"] });
  // a revoked certificate-trusted EK: its path is intact, its hash is not
  await store.trust.revokeEk(fleet[7].ekHash, { at: clock });
  assert.deepEqual(await sweepMatchesFullEvaluation(), { judged: 1, hosts: ALL - 2, changed: ["fleet-007"] });
});

test("an intermediate removed: only the hosts whose path ran through it are judged", async () => {
  assert.ok(await store.trust.removeCaCert("intermediate", intermediateId));
  assert.deepEqual(await sweepMatchesFullEvaluation(), { judged: 5, hosts: ALL - 3, changed: vendor.map((h) => h.name) });
});

test("a certificate's end of validity passes: its host is judged again without any trust change", async () => {
  clock += 120_000;
  assert.deepEqual(await sweepMatchesFullEvaluation(), { judged: 1, hosts: ALL - 8, changed: ["short-lived"] });
});

test("the fleet's root removed: every host under it turns unhealthy", async () => {
  const root = (await store.trust.listCaCerts("root")).find((c) => c.subject === "tpmtrust test EK root")!;
  assert.ok(await store.trust.removeCaCert("root", root.fingerprint));
  const r = await sweepMatchesFullEvaluation();
  assert.deepEqual([r.judged, r.changed.length], [249, 249]);
  assert.deepEqual(await healthy(), ["listed-2", "listed-3", "listed-4"]);
});
