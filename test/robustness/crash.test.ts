/**
 * Crash safety: `tpmtrust serve` (a child process) is killed with SIGKILL while registrations and
 * attestations are in flight, then started again on the same database. Every answer the service
 * acknowledged before the kill must still be there (hosts, attestation records, their audit entries),
 * acknowledged nonces stay spent, the audit chain verifies, and the service works on. SQLite and
 * PostgreSQL.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/store/index.js";
import { BACKENDS } from "../helpers/store.js";
import { addFleetBaseline, evidenceJson, identityOf, preQuotes, seedHosts, softHost, spawnServe, type Quote } from "../helpers/software-fleet.js";

const ATTESTING = 40;
const ROUNDS = 30;
const NEW_HOSTS = 200;
/** the kill comes once this many of each were acknowledged (the load goes on until then) */
const ACKED_ATTESTATIONS = 120;
const ACKED_REGISTRATIONS = 25;

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-crash-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function post(url: string, body: string, token?: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });
  return { status: r.status, body: await r.json() };
}

async function get(url: string, token: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.json() };
}

for (const [name, open] of BACKENDS) {
  describe(name, () => {
    test("SIGKILL under load loses no acknowledged registration or attestation; the audit chain verifies", async () => {
      const backend = await open();
      try {
        const db = await backend.newUrl();
        const tokenFile = join(dir, `${name}-admin-token`);
        const attesting = Array.from({ length: ATTESTING }, (_, i) => softHost(`fleet-${i}`));
        const joining = Array.from({ length: NEW_HOSTS }, (_, i) => softHost(`new-${i}`));
        let quotes: Quote[];
        {
          const store = await openStore(db);
          await addFleetBaseline(store);
          await seedHosts(store, attesting);
          for (const h of joining) await store.trust.addAllowlist(h.ekHash, { at: Date.now(), label: h.name });
          // round-major order: consecutive requests come from different hosts
          const perHost = await preQuotes(store, attesting, ROUNDS);
          quotes = Array.from({ length: ROUNDS }, (_, r) => perHost.map((q) => q[r])).flat();
          await store.close();
        }

        let s = await spawnServe(db, tokenFile);
        const admin = readFileSync(tokenFile, "utf8").trim();
        const ackedAttestations = new Map<string, { id: string; quote: Quote }>();
        const ackedHosts: string[] = [];
        let nextQuote = 0;
        let nextHost = 0;
        let killing: Promise<void> | undefined;
        const maybeKill = () => {
          if (!killing && ackedAttestations.size >= ACKED_ATTESTATIONS && ackedHosts.length >= ACKED_REGISTRATIONS) killing = s.kill();
        };
        const attestWorker = async () => {
          while (!killing && nextQuote < quotes.length) {
            const q = quotes[nextQuote++];
            try {
              const r = await post(`${s.url}/v1/attestations`, evidenceJson(q));
              assert.equal(r.status, 200, JSON.stringify(r.body));
              assert.equal(r.body.verdict, "pass", JSON.stringify(r.body));
              ackedAttestations.set(r.body.attestationId, { id: r.body.attestationId, quote: q });
              maybeKill();
            } catch (e) {
              if (killing) return; // in flight when the process died: not acknowledged
              throw e;
            }
          }
        };
        const registerWorker = async () => {
          while (!killing && nextHost < joining.length) {
            const h = joining[nextHost++];
            try {
              const r = await post(`${s.url}/v1/hosts`, JSON.stringify({ name: h.name, hardwareClass: "gce-n1", policyVersion: "v1", identity: identityOf(h) }), admin);
              assert.equal(r.status, 201, JSON.stringify(r.body));
              ackedHosts.push(h.name);
              maybeKill();
            } catch (e) {
              if (killing) return;
              throw e;
            }
          }
        };
        await Promise.all([...Array.from({ length: 8 }, attestWorker), ...Array.from({ length: 3 }, registerWorker)]);
        assert.ok(killing, `the load ended before the kill (${ackedAttestations.size} attestations, ${ackedHosts.length} registrations acknowledged)`);
        await killing;
        assert.equal(s.child.signalCode, "SIGKILL");

        s = await spawnServe(db, tokenFile);
        try {
          for (const host of ackedHosts) assert.equal((await get(`${s.url}/v1/hosts/${host}`, admin)).status, 200, `acknowledged host ${host} is lost`);
          for (const { id, quote } of ackedAttestations.values()) {
            const r = await get(`${s.url}/v1/attestations/${id}`, admin);
            assert.equal(r.status, 200, `acknowledged attestation ${id} is lost`);
            assert.equal(r.body.verdict, "pass");
            assert.equal(r.body.akNameHex, quote.akNameHex);
          }
          const chain = (await get(`${s.url}/v1/audit/verify`, admin)).body;
          assert.equal(chain.ok, true, JSON.stringify(chain));
          // acknowledged evidence stays spent; unused evidence still attests
          const replay = await post(`${s.url}/v1/attestations`, evidenceJson([...ackedAttestations.values()][0].quote));
          assert.equal(replay.body.code, "ERR_NONCE_REUSED");
          const fresh = await post(`${s.url}/v1/attestations`, evidenceJson(quotes[quotes.length - 1]));
          assert.equal(fresh.body.verdict, "pass", JSON.stringify(fresh.body));
        } finally {
          await s.stop();
        }

        // the audit log names every acknowledged decision
        const store = await openStore(db);
        try {
          const entries = await store.audit.list({ limit: 100_000 });
          const verdicts = new Set(entries.filter((e) => e.action === "attestation.verdict").map((e) => (e.details as { attestationId: string }).attestationId));
          for (const id of ackedAttestations.keys()) assert.ok(verdicts.has(id), `no audit entry for attestation ${id}`);
          const added = new Set(entries.filter((e) => e.action === "host.add" && e.outcome === "success").map((e) => e.subject));
          for (const host of ackedHosts) assert.ok(added.has(host), `no audit entry for host ${host}`);
          assert.equal((await store.audit.verify()).ok, true);
        } finally {
          await store.close();
        }
      } finally {
        await backend.close();
      }
    });
  });
}
