/**
 * The agent's TPM side against swtpm: the host identity (EKs byte-identical to tpm2_createek, EK
 * certificates with their keys, accepted by the service's identity decoder), quotes over several
 * banks that verify with the offline verifier (also when a PCR moves between quote and read), the
 * HTTP client's error mapping against a real loopback server, the state directory, backoff.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backoffDelay, identify, quotePcrs, readState, ServiceClient } from "../../src/agent/index.js";
import { writeState, type AgentState } from "../../src/agent/state.js";
import { decodeHostIdentity } from "../../src/attest/identity.js";
import { samePublicKey } from "../../src/crypto/keys.js";
import { TpmTrustError } from "../../src/errors.js";
import { TPM_ALG, TPM_CC } from "../../src/tpm/constants.js";
import { createAk, createEk, FlushContext, PCR_Extend, ReadPublic, TpmClient } from "../../src/tpm/commands/index.js";
import { pcrSelection } from "../../src/tpm/structures.js";
import { SwtpmTransport, type Transport } from "../../src/tpm/transport/index.js";
import { certificatePublicKey, parseCertificateDer } from "../../src/verify/ek/index.js";
import { verifyQuote } from "../../src/verify/quote.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { tpm2Raw } from "../helpers/tpm2tools.js";

let plain: Swtpm;
let withCerts: Swtpm;
let dir: string;

before(async () => {
  [plain, withCerts] = await Promise.all([startSwtpm(), startSwtpm({ ekCerts: true })]);
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-agent-"));
});
after(async () => {
  await Promise.all([plain?.stop(), withCerts?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const client = (t: Swtpm) => new TpmClient(new SwtpmTransport({ port: t.port }));
const isCode = (code: string) => (e: unknown) => e instanceof TpmTrustError && e.code === code;

test("identify: RSA-2048 and P-256 EKs byte-identical to tpm2_createek, TPM facts, accepted by the identity decoder", async () => {
  const { identity, notes } = await identify(client(plain));
  assert.deepEqual(notes, []);
  assert.deepEqual(
    identity.ekPublics.map((e) => e.alg),
    ["rsa2048", "ecc-p256"],
  );
  for (const [i, alg] of ["rsa", "ecc"].entries()) {
    const pub = join(dir, `${alg}.pub`);
    await tpm2Raw(plain, "tpm2_createek", ["-G", alg, "-c", join(dir, `${alg}.ctx`), "-u", pub]);
    assert.deepEqual(Buffer.from(identity.ekPublics[i].public, "base64"), readFileSync(pub), alg);
  }
  assert.deepEqual(identity.ekCertificates, []);
  assert.equal(identity.tpm.manufacturer, "IBM");
  assert.match(identity.tpm.firmware, /^\d+\.\d+$/);
  const decoded = decodeHostIdentity(JSON.parse(JSON.stringify(identity)));
  assert.equal(decoded.eks.length, 2);
});

test("identify: the persistent EK, every EK certificate in NV, and the EK of each certificate's template", async () => {
  const tpm = client(withCerts);
  const { identity } = await identify(tpm);
  assert.deepEqual(
    identity.ekPublics.map((e) => e.alg),
    ["rsa2048", "ecc-p256", "ecc-p384"],
  );
  const persistent = await tpm.run(ReadPublic, { objectHandle: 0x81010001 });
  assert.deepEqual(Buffer.from(identity.ekPublics[0].public, "base64").subarray(2), persistent.publicArea);
  assert.equal(identity.ekCertificates.length, 2);
  const decoded = decodeHostIdentity(identity);
  for (const der of identity.ekCertificates) {
    const key = certificatePublicKey(parseCertificateDer(Buffer.from(der, "base64")));
    assert.equal(decoded.eks.filter((ek) => samePublicKey(key, ek.public)).length, 1, "each certificate is for exactly one listed EK");
  }
});

/** Forwards to swtpm; after the first successful TPM2_Quote, a second client extends PCR 16 (as a busy host would). */
class ExtendAfterFirstQuote implements Transport {
  quotes = 0;
  constructor(
    private readonly inner: Transport,
    private readonly other: TpmClient,
  ) {}
  async send(command: Buffer): Promise<Buffer> {
    const resp = await this.inner.send(command);
    // count answered quotes only: a fresh swtpm may first answer with a retryable warning (TPM_RC_TESTING)
    if (command.readUInt32BE(6) === TPM_CC.Quote && resp.readUInt32BE(6) === 0 && ++this.quotes === 1) {
      const digests = [
        { hashAlg: TPM_ALG.SHA1, digest: randomBytes(20) },
        { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) },
      ];
      await this.other.run(PCR_Extend, { pcrHandle: 16, digests });
    }
    return resp;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

test("quotePcrs: one quote per bank that verifies with its PCR values; quoted again when a PCR moves before the read", async () => {
  const transport = new ExtendAfterFirstQuote(new SwtpmTransport({ port: plain.port }), client(plain));
  const tpm = new TpmClient(transport);
  const ek = await createEk(tpm, "rsa2048");
  for (const type of ["rsa", "ecc"] as const) {
    const ak = await createAk(tpm, ek, { type });
    try {
      const nonce = randomBytes(32);
      const selection = [pcrSelection(TPM_ALG.SHA1, [0, 7, 16]), pcrSelection(TPM_ALG.SHA256, [0, 7, 16])];
      const before = transport.quotes;
      const ev = await quotePcrs(tpm, ak.handle, nonce, selection);
      assert.equal(ev.quotes.length, 2);
      if (type === "rsa") assert.equal(transport.quotes - before, 4, "the first round was spoilt by the extend, the second one kept");
      for (const [i, q] of ev.quotes.entries()) {
        const facts = verifyQuote({ attestBytes: q.attest, attest: q.attested, signature: q.signature, ak: ak.public, nonce, pcrs: ev.pcrs });
        assert.deepEqual(facts.pcrSelect, [{ bank: ["sha1", "sha256"][i], pcrs: [0, 7, 16] }]);
      }
      assert.deepEqual(Object.keys(ev.pcrs).sort(), ["sha1", "sha256"]);
    } finally {
      await tpm.run(FlushContext, { flushHandle: ak.handle });
    }
  }
  await tpm.run(FlushContext, { flushHandle: ek.handle });
});

test("ServiceClient: problem+json becomes the service's code; other failures and no service are ERR_UNREACHABLE", async () => {
  const server: Server = createServer((req, res) => {
    if (req.url === "/v1/ok") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ echo: req.method }));
    if (req.url === "/v1/problem") {
      return res
        .writeHead(422, { "content-type": "application/problem+json" })
        .end(JSON.stringify({ type: "urn:tpmtrust:error:ERR_EK_NOT_TRUSTED", title: "t", status: 422, code: "ERR_EK_NOT_TRUSTED", detail: "not this EK", details: { why: "x" } }));
    }
    res.writeHead(502, { "content-type": "text/html" }).end("<html>bad gateway</html>");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const svc = new ServiceClient({ url: `http://127.0.0.1:${port}` });
    assert.deepEqual(await svc.post("/v1/ok", { a: 1 }), { echo: "POST" });
    await assert.rejects(svc.post("/v1/problem", {}), (e: unknown) => isCode("ERR_EK_NOT_TRUSTED")(e) && (e as TpmTrustError).message === "not this EK" && (e as TpmTrustError).details?.status === 422);
    await assert.rejects(svc.get("/v1/other"), isCode("ERR_UNREACHABLE"));
  } finally {
    await new Promise((r) => server.close(r));
  }
  await assert.rejects(new ServiceClient({ url: `http://127.0.0.1:${port}` }).get("/v1/ok"), isCode("ERR_UNREACHABLE"));
  assert.throws(() => new ServiceClient({ url: "ftp://x" }), isCode("ERR_USAGE"));
  assert.throws(() => new ServiceClient({ url: "http://x", ca: Buffer.from("pem") }), isCode("ERR_USAGE"));
});

test("state directory: 0700 / 0600, and a missing or damaged registration is refused with a code", () => {
  const stateDir = join(dir, "state");
  assert.throws(() => readState(stateDir), isCode("ERR_USAGE"));
  const s: AgentState = {
    version: 1,
    server: "http://127.0.0.1:1/",
    host: "h1",
    ekAlg: "rsa2048",
    akAlg: "rsa",
    akNameHex: "000b" + "00".repeat(32),
    akPublic: "AAA=",
    akHandle: 0x81010003,
    registeredAt: new Date(0).toISOString(),
  };
  writeState(stateDir, s);
  assert.deepEqual(readState(stateDir), s);
  assert.equal(statSync(stateDir).mode & 0o777, 0o700);
  assert.equal(statSync(join(stateDir, "agent.json")).mode & 0o777, 0o600);
  for (const bad of ["{", JSON.stringify({ ...s, version: 2 }), JSON.stringify({ ...s, akPrivate: "AAA=" }), JSON.stringify({ ...s, akHandle: 0x01000000 }), JSON.stringify({ ...s, ekAlg: "dsa" })]) {
    writeFileSync(join(stateDir, "agent.json"), bad);
    assert.throws(() => readState(stateDir), isCode("ERR_PARSE_FORMAT"), bad.slice(0, 40));
  }
});

test("backoff: from 1 s, doubling, capped at max(interval, 60 s), jittered to 50–100 %", () => {
  assert.deepEqual(
    [1, 2, 3, 7, 8, 30, 1000].map((n) => backoffDelay(n, 10_000, () => 1)),
    [1000, 2000, 4000, 60_000, 60_000, 60_000, 60_000],
  );
  assert.equal(backoffDelay(20, 300_000, () => 1), 300_000);
  assert.equal(backoffDelay(1, 10_000, () => 0), 500);
});
