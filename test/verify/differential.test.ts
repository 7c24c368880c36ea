/**
 * One verdict for the same evidence: the same quote, PCR values and event log (a real log from the
 * fixtures, and mutated ones) go through the offline `tpmtrust verify quote --eventlog` and through
 * `serve`'s attestation; both must reach the same verdict with the same code.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { encodeTpmsAttest } from "../../src/tpm/structures.js";
import { EV, parseEventLog } from "../../src/verify/eventlog/index.js";
import { cli } from "../helpers/cli.js";
import { addFleetBaseline, fleetPcrs, FLEET_LOG, quoteAttest, seedHosts, signEcdsa, softHost, type SoftHost } from "../helpers/software-fleet.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-differential-"));
let s: RunningServer;
let host: SoftHost;

before(async () => {
  s = await startServer({ db: join(dir, "d.db"), listen: "127.0.0.1:0", logger: false, attest: { sweepMs: 0 } });
  host = softHost("diff-1");
  await addFleetBaseline(s.store);
  await seedHosts(s.store, [host]);
  writeFileSync(join(dir, "ak.pub"), host.akPublic);
});
after(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The log without the records that extend `pcr` (EV_NO_ACTION records, e.g. the Spec ID header, stay). */
function withoutPcr(log: Buffer, pcr: number): Buffer {
  const events = parseEventLog(log).events;
  const parts: Buffer[] = [log.subarray(0, events[0].offset)];
  events.forEach((e, i) => {
    if (e.pcr !== pcr || e.type === EV.NO_ACTION) parts.push(log.subarray(e.offset, events[i + 1]?.offset ?? log.length));
  });
  return Buffer.concat(parts);
}

/** The log with one digest byte of the last record of `pcr` flipped. */
function tampered(log: Buffer, pcr: number): Buffer {
  const ev = parseEventLog(log).events.filter((e) => e.pcr === pcr).at(-1)!;
  const out = Buffer.from(log);
  const digest = Object.values(ev.digests)[0];
  out[log.indexOf(digest, ev.offset)] ^= 0xff;
  return out;
}

interface Case {
  name: string;
  /** the code both must reach (null: pass) */
  want: string | null;
  log?: Buffer;
  pcrs?: (p: Record<string, Record<string, string>>) => void;
  bytes?: (b: Buffer) => Buffer;
}

const CASES: Case[] = [
  { name: "the real log", want: null },
  { name: "a digest of PCR 4 altered", want: "ERR_EVENTLOG_REPLAY_MISMATCH", log: tampered(FLEET_LOG, 4) },
  { name: "every PCR 7 event left out", want: "ERR_EVENTLOG_PCR_UNEXPLAINED", log: withoutPcr(FLEET_LOG, 7) },
  { name: "every PCR 0 event left out", want: "ERR_EVENTLOG_PCR_UNEXPLAINED", log: withoutPcr(FLEET_LOG, 0) },
  { name: "a claimed PCR value the quote does not cover", want: "ERR_PCR_DIGEST_MISMATCH", pcrs: (p) => (p.sha256["5"] = "00".repeat(32)) },
  { name: "one byte of the attest flipped", want: "ERR_SIGNATURE_INVALID", bytes: (b) => { const c = Buffer.from(b); c[c.length - 3] ^= 1; return c; } },
];

for (const c of CASES) {
  test(`same verdict offline and in the service: ${c.name}`, async () => {
    const ch = await fetch(`${s.url}/v1/attestations/challenge`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ akNameHex: host.akName.toString("hex") }) });
    const nonce = Buffer.from((await ch.json()).nonceHex, "hex");
    const signed = encodeTpmsAttest(quoteAttest(host, nonce));
    const signature = signEcdsa(host.akKey, signed);
    const attest = c.bytes ? c.bytes(signed) : signed;
    const pcrs = fleetPcrs();
    c.pcrs?.(pcrs);
    const log = c.log ?? FLEET_LOG;

    const body = { akNameHex: host.akName.toString("hex"), nonceHex: nonce.toString("hex"), quotes: [{ attest: attest.toString("base64"), signature: signature.toString("base64") }], pcrs, eventLog: log.toString("base64") };
    const r = await fetch(`${s.url}/v1/attestations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const answer = await r.json();
    const service = r.status === 200 ? { verdict: answer.verdict, code: answer.code } : { verdict: "fail", code: answer.code };

    const f = (n: string) => join(dir, `${c.name.replace(/\W+/g, "-")}.${n}`);
    writeFileSync(f("attest"), attest);
    writeFileSync(f("sig"), signature);
    writeFileSync(f("pcrs.json"), JSON.stringify(pcrs));
    writeFileSync(f("log"), log);
    const o = await cli(["verify", "quote", "--ak", join(dir, "ak.pub"), "--attest", f("attest"), "--signature", f("sig"), "--nonce", nonce.toString("hex"), "--pcrs", f("pcrs.json"), "--eventlog", f("log"), "--json"]);
    const j = o.json();
    const offline = { verdict: o.code === 0 ? "pass" : "fail", code: o.code === 0 ? null : j.code };
    assert.ok(o.code === 0 || o.code === 1, `offline exit ${o.code}: ${o.stdout}${o.stderr}`);
    assert.deepEqual(service, { verdict: c.want === null ? "pass" : "fail", code: c.want });
    assert.deepEqual(offline, service, `offline ${JSON.stringify(j).slice(0, 300)} service ${JSON.stringify(answer).slice(0, 300)}`);
  });
}
