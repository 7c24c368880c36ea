/** GET /metrics: Prometheus text for admin/auditor tokens only, gauges read from the store per scrape. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../../src/server/serve.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-metrics-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The value of one sample line, e.g. `tpmtrust_hosts{health="healthy"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("/metrics needs a reader token and reports audit chain length, hosts by health and request latency", async () => {
  const s = await startServer({ db: join(dir, "m.db"), listen: "127.0.0.1:0", logger: false });
  try {
    const admin = readFileSync(s.adminTokenFile!, "utf8").trim();
    const auditor = (await s.store.adminTokens.create({ role: "auditor", label: "prometheus" })).token;

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
