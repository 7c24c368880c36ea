/** GET /metrics: Prometheus text for admin/auditor tokens only, gauges read from the store per scrape, counters fed by the flows. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { learnBaseline } from "../../src/policy/baseline.js";
import { startServer } from "../../src/server/serve.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { addHost, challenge, evidence, postJson, readLog, startTpmHost } from "../helpers/attest-host.js";
import { seedHosts, softHost } from "../helpers/software-fleet.js";
import { startPostgres } from "../helpers/postgres.js";
import { rawSql } from "../helpers/store.js";
import { pino } from "pino";

const RHEL = "rhel8-gce-uefi.bin";
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-metrics-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The Prometheus text of GET /metrics read with `token`. */
async function scrape(url: string, token: string): Promise<string> {
  return (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
}

/** The value of one sample line, e.g. `tpmtrust_hosts{health="healthy"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("/metrics needs a reader token and reports audit chain length, hosts by health and request latency", async () => {
  const s = await startServer({ db: join(dir, "m.db"), listen: "127.0.0.1:0", logger: false });
  try {
    const admin = readFileSync(s.adminTokenFile!, "utf8").trim();
    const auditor = (await s.store.adminTokens.create({ at: Date.now(), role: "auditor", label: "prometheus" })).token;

    const anon = await fetch(`${s.url}/metrics`);
    assert.equal(anon.status, 401);
    assert.equal((await anon.json()).code, "ERR_UNAUTHENTICATED");

    // a call that fails validation and one to an unknown URL, so both show up by route pattern
    await fetch(`${s.url}/v1/trust/allowlist`, { method: "POST", headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" }, body: "{}" });
    await fetch(`${s.url}/no/such/path/${Date.now()}`);

    const r = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${auditor}` } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    const head = await s.store.audit.head();
    assert.equal(sample(text, "tpmtrust_audit_chain_length"), head.seq);
    assert.ok(head.seq >= 2, "the token creation and the denied call are audited");
    assert.equal(sample(text, 'tpmtrust_hosts{health="unknown"}'), 0);
    assert.equal(sample(text, 'tpmtrust_http_request_duration_seconds_count{method="POST",route="/v1/trust/allowlist",status="400"}'), 1);
    assert.ok((sample(text, 'tpmtrust_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}') ?? 0) >= 1);
    assert.doesNotMatch(text, /no\/such\/path/);
    assert.match(text, /^# TYPE tpmtrust_attestations_total counter$/m);
    assert.match(text, /^tpmtrust_process_resident_memory_bytes \d+/m);
  } finally {
    await s.close();
  }
});

test("trust sweeps count, with the hosts each evaluated afresh: all after the first trust withdrawn, none when their cached evaluations still hold", async () => {
  const s = await startServer({ db: join(dir, "sweeps.db"), listen: "127.0.0.1:0", logger: false, adminTokenFile: join(dir, "sweeps-admin-token"), attest: { sweepMs: 0 } });
  try {
    const admin = readFileSync(s.adminTokenFile!, "utf8").trim();
    await seedHosts(s.store, [softHost("sw-1"), softHost("sw-2"), softHost("sw-3")]);
    const sweepsReach = async (n: number) => {
      for (;;) {
        const text = await scrape(s.url, admin);
        if ((sample(text, "tpmtrust_trust_sweeps_total") ?? 0) >= n) return text;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    assert.equal(sample(await scrape(s.url, admin), "tpmtrust_trust_sweeps_total"), 0);
    // revoking an EK none of the hosts has: a trust change that sweeps
    const revoke = async () => {
      const r = await postJson(`${s.url}/v1/trust/revoked-eks`, { ekHash: randomBytes(32).toString("hex") }, { authorization: `Bearer ${admin}` });
      assert.equal(r.status, 201);
    };
    await revoke();
    assert.equal(sample(await sweepsReach(1), "tpmtrust_trust_sweep_judged_total"), 3);
    await revoke();
    const text = await sweepsReach(2);
    assert.equal(sample(text, "tpmtrust_trust_sweeps_total"), 2);
    assert.equal(sample(text, "tpmtrust_trust_sweep_judged_total"), 3, "an unrelated revocation leaves every cached evaluation standing");
  } finally {
    await s.close();
  }
});

test("attestations count by verdict and reason with their latency; registrations and activations by outcome", async () => {
  const s = await startServer({ db: join(dir, "a.db"), listen: "127.0.0.1:0", logger: false, adminTokenFile: join(dir, "a-admin-token"), attest: { sweepMs: 0 } });
  const host = await startTpmHost({ logFile: RHEL });
  try {
    const admin = readFileSync(s.adminTokenFile!, "utf8").trim();
    const before = await scrape(s.url, admin);
    const delta = (text: string, series: string) => (sample(text, series) ?? 0) - (sample(before, series) ?? 0);

    await addHost(s.store, host, { name: "m-1", hardwareClass: "gce-n1" });
    const doc = learnBaseline("gce", [parseEventLog(readLog(RHEL))], [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal((await postJson(`${s.url}/v1/policies`, { kind: "baseline", name: "gce", hardwareClass: "gce-n1", document: doc }, { authorization: `Bearer ${admin}` })).status, 201);
    const c = await challenge(s.url, host);
    const ev = await evidence(host, c);
    assert.equal((await postJson(`${s.url}/v1/attestations`, ev)).body.verdict, "pass");
    assert.equal((await postJson(`${s.url}/v1/attestations`, ev)).body.code, "ERR_NONCE_REUSED");
    // a registration and an activation that fail in their services, counted with their codes
    const badHost = await postJson(`${s.url}/v1/hosts`, { name: "m-2", hardwareClass: "gce-n1", identity: { ekPublics: [{ alg: "rsa2048", public: "AAECAwQFBgc=" }], ekCertificates: [], tpm: { manufacturer: "IBM", vendor: "SW", firmware: "1" } } }, { authorization: `Bearer ${admin}` });
    const tpm2b = (b: Buffer) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]).toString("base64");
    // a v2 host stored without an EK certificate, whose EK comes without one: refused by the activation service
    const bare = softHost("m-3");
    await s.store.hosts.add({ at: Date.now(), name: bare.name, hardwareClass: "gce-n1", policyVersion: "v2", trustMethod: "ek-cert", eks: [{ name: bare.ekName, public: bare.ekPublic, cert: null }] });
    const badActivation = await postJson(`${s.url}/v1/activations`, { ekPublic: tpm2b(bare.ekPublic), akPublic: tpm2b(host.ak.publicArea) });

    assert.match(badHost.body.code, /^ERR_PARSE_/);
    assert.equal(badActivation.body.code, "ERR_EK_CERT_REQUIRED");
    const after = await scrape(s.url, admin);
    assert.equal(delta(after, 'tpmtrust_attestations_total{verdict="pass",reason="none"}'), 1);
    assert.equal(delta(after, 'tpmtrust_attestations_total{verdict="rejected",reason="ERR_NONCE_REUSED"}'), 1);
    assert.equal(delta(after, 'tpmtrust_attestation_duration_seconds_count{verdict="pass"}'), 1);
    // both quotes were verified (the replay is refused only when its verdict is recorded), on whichever thread
    assert.equal(delta(after, 'tpmtrust_quote_verifications_total{thread="event-loop"}') + delta(after, 'tpmtrust_quote_verifications_total{thread="worker"}'), 2);
    assert.equal(delta(after, 'tpmtrust_attestation_challenges_total{outcome="success",reason="none"}'), 1);
    assert.equal(delta(after, `tpmtrust_host_additions_total{outcome="failure",reason="${badHost.body.code}"}`), 1);
    assert.equal(delta(after, `tpmtrust_activations_total{stage="start",outcome="failure",reason="${badActivation.body.code}"}`), 1);
    assert.equal(sample(after, 'tpmtrust_hosts{health="healthy"}'), 1);
  } finally {
    await host.close();
    await s.close();
  }
});

test("PostgreSQL pool errors are logged and counted: a pooled connection the server ends shows in tpmtrust_store_connection_errors_total", async () => {
  const cluster = await startPostgres();
  const lines: string[] = [];
  const logger = pino({ level: "error" }, { write: (l: string) => void lines.push(l) });
  const url = await cluster.createDatabase();
  const s = await startServer({ db: url, listen: "127.0.0.1:0", logger, adminTokenFile: join(dir, "pg-admin-token"), provisioningKeyFile: join(dir, "pg-provisioning-key") });
  try {
    const admin = readFileSync(join(dir, "pg-admin-token"), "utf8").trim();
    const errors = async () => sample(await scrape(s.url, admin), "tpmtrust_store_connection_errors_total") ?? 0;
    const before = await errors();
    await rawSql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tpmtrust' AND pid <> pg_backend_pid()");
    while ((await errors()) === before) await new Promise((r) => setTimeout(r, 20));
    assert.ok(lines.some((l) => /PostgreSQL connection error/.test(l)), lines.join(""));
  } finally {
    await s.close();
    await cluster.stop();
  }
});
