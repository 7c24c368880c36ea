/**
 * One verdict for the same evidence: the same quote, PCR values and event log (a real log from the
 * fixtures, and mutated ones) go through the offline `tpmtrust verify quote --eventlog` and through
 * `serve`'s attestation; both must reach the same verdict with the same code. With an IMA list
 * (`verify quote --ima`, the attestation's `ima`), PCR 10 is judged by the list in both.
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
import { createHash } from "node:crypto";
import { addPolicy } from "../../src/attest/policies.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { learnRuntimePolicy } from "../../src/policy/runtime.js";
import { hashAlgByName } from "../../src/tpm/constants.js";
import { pcrSelection } from "../../src/tpm/structures.js";
import type { TpmsAttest } from "../../src/tpm/types.js";
import { parseImaList, replayIma } from "../../src/verify/ima/index.js";
import { entry } from "./ima-build.js";

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

    await judgedAlike(c.name, c.want, { host, akPub: join(dir, "ak.pub"), nonce, attest, signature, pcrs, log });
  });
}

/**
 * Sends the evidence to the service and, as files, to `tpmtrust verify quote`; asserts both reach
 * `want` (null: pass) with the same verdict and code. Returns the CLI's JSON.
 */
async function judgedAlike(
  name: string,
  want: string | null,
  e: { host: SoftHost; akPub: string; nonce: Buffer; attest: Buffer; signature: Buffer; pcrs: Record<string, Record<string, string>>; log: Buffer; ima?: Buffer },
) {
  const body = {
    akNameHex: e.host.akName.toString("hex"),
    nonceHex: e.nonce.toString("hex"),
    quotes: [{ attest: e.attest.toString("base64"), signature: e.signature.toString("base64") }],
    pcrs: e.pcrs,
    eventLog: e.log.toString("base64"),
    ...(e.ima ? { ima: { startIndex: 0, list: e.ima.toString("base64") } } : {}),
  };
  const r = await fetch(`${s.url}/v1/attestations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = await r.json();
  const service = r.status === 200 ? { verdict: answer.verdict, code: answer.code } : { verdict: "fail", code: answer.code };

  const f = (n: string) => join(dir, `${name.replace(/\W+/g, "-")}.${n}`);
  writeFileSync(f("attest"), e.attest);
  writeFileSync(f("sig"), e.signature);
  writeFileSync(f("pcrs.json"), JSON.stringify(e.pcrs));
  writeFileSync(f("log"), e.log);
  if (e.ima) writeFileSync(f("ima"), e.ima);
  const o = await cli(["verify", "quote", "--ak", e.akPub, "--attest", f("attest"), "--signature", f("sig"), "--nonce", e.nonce.toString("hex"), "--pcrs", f("pcrs.json"), "--eventlog", f("log"), ...(e.ima ? ["--ima", f("ima")] : []), "--json"]);
  const j = o.json();
  const offline = { verdict: o.code === 0 ? "pass" : "fail", code: o.code === 0 ? null : j.code };
  assert.ok(o.code === 0 || o.code === 1, `offline exit ${o.code}: ${o.stdout}${o.stderr}`);
  assert.deepEqual(service, { verdict: want === null ? "pass" : "fail", code: want });
  assert.deepEqual(offline, service, `offline ${JSON.stringify(j).slice(0, 300)} service ${JSON.stringify(answer).slice(0, 300)}`);
  return j;
}

// ---- with an IMA list: PCR 10 is IMA's (not the firmware log's), the list must replay to it
const IMA_CLASS = "diff-ima";
const IMA_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 10];
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest();
const imaEntries = (() => {
  const p = fleetPcrs().sha256;
  const aggregate = sha256(Buffer.concat([0, 1, 2, 3, 4, 5, 6, 7].map((i) => Buffer.from(p[String(i)], "hex"))));
  return [entry({ path: "boot_aggregate", digest: aggregate }), ...["/usr/lib/systemd/systemd", "/usr/sbin/sshd", "/usr/bin/bash"].map((f) => entry({ path: f, digest: sha256(f) }))];
})();
const IMA_LIST = Buffer.concat(imaEntries.map((e) => e.binary));
let imaHost: SoftHost;
let imaReady: Promise<void> | undefined;

/** The IMA host's class: the fleet baseline and a runtime policy that allows every entry of the list. */
const imaSetup = async () => {
  await addPolicy(s.store, "test", Date.now(), { kind: "baseline", name: "diff-ima", hardwareClass: IMA_CLASS, document: learnBaseline("diff-ima", [parseEventLog(FLEET_LOG)], [0, 1, 2, 3, 4, 5, 6, 7]) });
  await addPolicy(s.store, "test", Date.now(), { kind: "runtime", name: "diff-ima", hardwareClass: IMA_CLASS, document: learnRuntimePolicy("diff-ima", parseImaList(IMA_LIST)) });
  imaHost = softHost("diff-ima-1");
  await seedHosts(s.store, [imaHost]);
  await s.store.hosts.update(imaHost.name, { hardwareClass: IMA_CLASS }, Date.now());
  writeFileSync(join(dir, "ima-ak.pub"), imaHost.akPublic);
};

const IMA_CASES: { name: string; want: string | null; list: () => Buffer }[] = [
  { name: "an IMA list that replays to the quoted PCR 10", want: null, list: () => IMA_LIST },
  {
    name: "an IMA list with one file digest flipped",
    want: "ERR_IMA_REPLAY_MISMATCH",
    list: () => {
      const c = Buffer.from(IMA_LIST);
      c[IMA_LIST.indexOf(imaEntries[2].binary) + imaEntries[2].binary.length - imaEntries[2].templateData.length + 4 + "sha256:\0".length] ^= 1;
      return c;
    },
  },
  { name: "an IMA list with two entries swapped", want: "ERR_IMA_REPLAY_MISMATCH", list: () => Buffer.concat([imaEntries[0], imaEntries[2], imaEntries[1], imaEntries[3]].map((e) => e.binary)) },
];

for (const c of IMA_CASES) {
  test(`same verdict offline and in the service: ${c.name}`, async () => {
    await (imaReady ??= imaSetup());
    const ch = await fetch(`${s.url}/v1/attestations/challenge`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ akNameHex: imaHost.akName.toString("hex") }) });
    const nonce = Buffer.from((await ch.json()).nonceHex, "hex");
    const pcrs = fleetPcrs();
    const banks = Object.keys(pcrs);
    const ten = replayIma(parseImaList(IMA_LIST), banks).pcrs;
    for (const b of banks) pcrs[b]["10"] = ten[b][10].toString("hex");
    const base = quoteAttest(imaHost, nonce);
    const digest = sha256(Buffer.concat(banks.flatMap((b) => IMA_PCRS.map((p) => Buffer.from(pcrs[b][String(p)], "hex")))));
    const attest = encodeTpmsAttest({ ...base, attested: { pcrSelect: banks.map((b) => pcrSelection(hashAlgByName(b)!, IMA_PCRS)), pcrDigest: digest } } as TpmsAttest);
    const signature = signEcdsa(imaHost.akKey, attest);
    const j = await judgedAlike(c.name, c.want, { host: imaHost, akPub: join(dir, "ima-ak.pub"), nonce, attest, signature, pcrs, log: FLEET_LOG, ima: c.list() });
    if (c.want === null) assert.equal(j.ima.covered, imaEntries.length);
  });
}
