/**
 * Quotes verified on worker threads (`serve --verify-threads`) give exactly verifyQuoteSet's answer
 * on the calling thread: the same result with Buffers, or the same typed error, for good evidence
 * and for every kind of forgery. An idle event loop verifies them itself.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { receiveEvidence, type EvidenceBody } from "../../src/attest/evidence.js";
import { quoteVerifier, type QuoteJob } from "../../src/attest/quote-verifier.js";
import { TpmTrustError } from "../../src/errors.js";
import { evidenceJson, fleetPcrs, quote, softHost, type SoftHost } from "../helpers/software-fleet.js";

const host = softHost("qv-1");
const other = softHost("qv-2");
const NONCE = Buffer.alloc(32, 7);
const REQUIRED = Object.keys(fleetPcrs()).map((bank) => ({ bank, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }));

function job(h: SoftHost, change: (body: EvidenceBody) => void = () => undefined, o: { nonce?: Buffer; required?: QuoteJob["required"]; ak?: SoftHost } = {}): QuoteJob {
  const body = JSON.parse(evidenceJson(quote(h, NONCE), { log: "sha256" })) as EvidenceBody;
  change(body);
  const ev = receiveEvidence(body);
  const ak = o.ak ?? h;
  return { akName: ak.akName, akPublic: ak.akPublic, quotes: ev.quotes, nonce: o.nonce ?? NONCE, pcrs: ev.pcrs, required: o.required ?? REQUIRED };
}

const flipped = (b64: string, at: number) => {
  const b = Buffer.from(b64, "base64");
  b[at] ^= 1;
  return b.toString("base64");
};

describe("quote verification threads", () => {
  const inline = quoteVerifier(0);
  const ran: string[] = [];
  const threads = quoteVerifier(2, { offload: "always", onVerified: (t) => ran.push(t) });
  after(() => threads.close());

  const outcome = (p: Promise<unknown>) =>
    p.then(
      (ok) => ({ ok }),
      (e: unknown) => {
        assert.ok(e instanceof TpmTrustError, `a typed error, not ${String(e)}`);
        return { code: e.code, message: e.message, details: e.details };
      },
    );

  test("good evidence: the same result, its byte strings Buffers again", async () => {
    const r = await threads.verify(job(host));
    assert.deepEqual(r, await inline.verify(job(host)));
    assert.ok(Buffer.isBuffer(r.pcrDigest));
    assert.ok(Buffer.isBuffer(r.pcrs.sha256[0]));
    assert.ok(Buffer.isBuffer(r.attests[0].extraData));
    assert.equal(r.attests[0].clockInfo.clock, 1234n);
    assert.equal(ran.at(-1), "worker");
  });

  test("an event loop not (yet) found busy verifies on its own thread, with the same answers", async () => {
    const seen: string[] = [];
    const [good, replayed] = [job(host), job(host, undefined, { nonce: Buffer.alloc(32, 8) })];
    // both asked at once, before the verifier has measured its event loop at all
    const idle = quoteVerifier(1, { onVerified: (t) => seen.push(t) });
    try {
      const [r, bad] = await Promise.all([idle.verify(good), outcome(idle.verify(replayed))]);
      assert.deepEqual(r, await inline.verify(job(host)));
      assert.equal((bad as { code?: string }).code, "ERR_NONCE_MISMATCH");
      assert.deepEqual(seen, ["event-loop", "event-loop"]);
    } finally {
      await idle.close();
    }
  });

  const forgeries: [string, string, () => QuoteJob][] = [
    ["signed by another host's AK", "ERR_SIGNATURE_INVALID", () => job(other, undefined, { ak: host })],
    ["a bit of the signed attest changed", "ERR_SIGNATURE_INVALID", () => job(host, (b) => (b.quotes[0].attest = flipped(b.quotes[0].attest, 40)))],
    ["over another nonce", "ERR_NONCE_MISMATCH", () => job(host, undefined, { nonce: Buffer.alloc(32, 8) })],
    ["claimed PCR values the quote does not cover", "ERR_PCR_DIGEST_MISMATCH", () => job(host, (b) => (b.pcrs.sha256["7"] = "00".repeat(32)))],
    ["a required PCR not quoted", "ERR_PCR_SELECTION_MISMATCH", () => job(host, undefined, { required: [{ bank: "sha256", pcrs: [0, 8] }] })],
    ["not a TPM-generated structure", "ERR_MAGIC", () => job(host, (b) => (b.quotes[0].attest = flipped(b.quotes[0].attest, 0)))],
  ];
  for (const [what, code, make] of forgeries) {
    test(`${what}: ${code}, the same error from either thread`, async () => {
      const there = await outcome(threads.verify(make()));
      assert.equal((there as { code?: string }).code, code);
      assert.deepEqual(there, await outcome(inline.verify(make())));
    });
  }

  test("many jobs at once across the threads each get their own answer", async () => {
    const hosts = [host, other, softHost("qv-3"), softHost("qv-4")];
    const answers = await Promise.all(hosts.flatMap((h, i) => [outcome(threads.verify(job(h))), outcome(threads.verify(job(h, undefined, { nonce: Buffer.alloc(32, i) })))]));
    answers.forEach((a, i) => assert.equal((a as { code?: string }).code, i % 2 === 0 ? undefined : "ERR_NONCE_MISMATCH", `answer ${i}`));
  });

  test("closed: a job still running fails, and so does a new one", async () => {
    const v = quoteVerifier(1, { offload: "always" });
    const running = v.verify(job(host));
    await v.close();
    await assert.rejects(running, /closed/);
    await assert.rejects(v.verify(job(host)), /closed/);
  });
});
