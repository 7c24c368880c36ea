/**
 * Off-chip EK certificates (Intel PTT, AMD fTPM): the URL derivation against the published
 * examples of go-attestation and tpm2-tools (test/fixtures/offchip-ek/) and against the installed
 * tpm2_getekcertificate; answers in the services' formats served from 127.0.0.1 for a swtpm whose
 * NV holds no EK certificate; the cache; and the refusals (a certificate for another key, no answer).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, type KeyObject } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { identify } from "../../src/agent/identify.js";
import { addHost } from "../../src/attest/hosts.js";
import { certificateFromOffChipAnswer, offChipEkCertPaths, offChipEkCertUrls, offChipVendor, type OffChipVendor } from "../../src/crypto/offchip-ek.js";
import { certificatePem } from "../../src/encoding.js";
import { TpmTrustError } from "../../src/errors.js";
import { openStore } from "../../src/store/index.js";
import { createEk, ekTemplate, FlushContext, TpmClient } from "../../src/tpm/commands/index.js";
import { decodeTpm2bPublic, encodeTpm2bPublic } from "../../src/tpm/structures.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { testEkCertificate, trustTestEkRoot } from "../helpers/ek-trust.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { tpm2 } from "../helpers/tpm2tools.js";
import { fakeEkCertService as fakeService, intelAnswer, type FakeEkCertService as FakeService } from "../helpers/ek-cert-service.js";

interface Example {
  vendor: OffChipVendor;
  source: string;
  spkiPem?: string;
  tpm2bPublicHex?: string;
  url: string;
}
const EXAMPLES: Example[] = JSON.parse(readFileSync(new URL("../fixtures/offchip-ek/published-examples.json", import.meta.url), "utf8")).examples;

/** An RSA EK public area holding the modulus of an SPKI key (go-attestation's examples are SPKI). */
function rsaEkFromSpki(pem: string): TpmtPublic {
  const jwk = createPublicKey(pem).export({ format: "jwk" });
  assert.equal(jwk.e, "AQAB");
  return { ...(ekTemplate("rsa2048") as Extract<TpmtPublic, { unique: Buffer }>), unique: Buffer.from(jwk.n!, "base64url") } as TpmtPublic;
}
const exampleKey = (x: Example) => (x.spkiPem ? rsaEkFromSpki(x.spkiPem) : decodeTpm2bPublic(Buffer.from(x.tpm2bPublicHex!, "hex")));

let tpm: Swtpm;
let client: TpmClient;
let service: FakeService;
let dir: string;
let rsaEk: TpmtPublic;
let eccEk: TpmtPublic;

before(async () => {
  [tpm, service] = await Promise.all([startSwtpm(), fakeService()]);
  client = new TpmClient(new SwtpmTransport({ port: tpm.port }));
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-offchip-"));
  for (const kind of ["rsa2048", "ecc-p256"] as const) {
    const ek = await createEk(client, kind);
    await client.run(FlushContext, { flushHandle: ek.handle });
    if (kind === "rsa2048") rsaEk = ek.public;
    else eccEk = ek.public;
  }
});
after(async () => {
  await client?.close();
  await Promise.all([tpm?.stop(), service?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const isCode = (code: string) => (e: unknown) => e instanceof TpmTrustError && e.code === code;
const ekCertFor = (pub: TpmtPublic): Promise<Buffer> => testEkCertificate(publicKeyFromTpmt(pub) as KeyObject);

test("URL derivation: the published examples of go-attestation and tpm2-tools", () => {
  assert.equal(EXAMPLES.length, 4);
  for (const x of EXAMPLES) {
    assert.equal(offChipEkCertUrls(exampleKey(x), x.vendor)[0], x.url, x.source);
  }
  // AMD: go-attestation's upper case first, then tpm2-tools' lower case
  const amd = EXAMPLES.find((x) => x.vendor === "amd")!;
  assert.deepEqual(offChipEkCertPaths(exampleKey(amd), "amd"), ["D027B3CE6A9B6B56846D2B9935884A88", "d027b3ce6a9b6b56846d2b9935884a88"]);
  assert.equal(offChipVendor(0x494e5443), "intel");
  assert.equal(offChipVendor(0x414d4400), "amd");
  assert.equal(offChipVendor(0x49424d20), undefined); // swtpm: "IBM "
});

test("URL derivation equals what the installed tpm2_getekcertificate asks for (tpm2-tools' samples and this swtpm's EKs)", async () => {
  const keys: [TpmtPublic, Buffer][] = [
    ...EXAMPLES.filter((x) => x.tpm2bPublicHex).map((x): [TpmtPublic, Buffer] => [exampleKey(x), Buffer.from(x.tpm2bPublicHex!, "hex")]),
    [rsaEk, encodeTpm2bPublic(rsaEk)],
    [eccEk, encodeTpm2bPublic(eccEk)],
  ];
  for (const [i, [pub, tpm2b]] of keys.entries()) {
    const file = join(dir, `tools-${i}.pub`);
    writeFileSync(file, tpm2b);
    service.asked.length = 0;
    // the service answers 404: the tool fails, having asked for the URL it derives (5.4 has Intel's encoding only)
    await assert.rejects(tpm2(tpm, "tpm2_getekcertificate", ["-x", "-u", file, "-o", join(dir, "unused.crt"), service.base]));
    assert.deepEqual(service.asked, offChipEkCertPaths(pub, "intel"), `key ${i}`);
  }
});

test("answers: Intel's JSON with a base64url certificate, PEM, DER; anything else is ERR_PARSE_CERT", async () => {
  const der = await ekCertFor(rsaEk);
  assert.deepEqual(certificateFromOffChipAnswer(intelAnswer("x", der).body), der);
  assert.deepEqual(certificateFromOffChipAnswer(Buffer.from(certificatePem(der))), der);
  assert.deepEqual(certificateFromOffChipAnswer(der), der);
  for (const bad of ["", "<html>502 Bad Gateway</html>", '{"pubhash":"x"}', '{"certificate":"not base64url!"}', "{nope"]) {
    assert.throws(() => certificateFromOffChipAnswer(Buffer.from(bad)), isCode("ERR_PARSE_CERT"), bad);
  }
});

test("identify --fetch-ek-cert on a TPM without NV certificates: Intel's JSON answer, cached, stored and trusted by the service as an NV certificate", async () => {
  const der = await ekCertFor(rsaEk);
  const [path] = offChipEkCertPaths(rsaEk, "intel");
  service.routes.set(path, intelAnswer(path, der));
  const cacheDir = join(dir, "cache-intel");
  const host = join(dir, "host.json");
  service.asked.length = 0;
  const r = await cli(["agent", "identify", "--tpm", tpm.tcti, "--fetch-ek-cert", "--ek-cert-url", service.base, "--ek-cert-vendor", "intel", "--ek-cert-cache", cacheDir]);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(host, r.stdout);
  const identity = r.json();
  assert.deepEqual(identity.ekCertificates, [der.toString("base64")]);
  assert.match(r.stderr, new RegExp(`EK rsa2048 \\(template L-1, transient, certificate off-chip ${service.base}${path.replace(/[%]/g, "\\$&")}\\)`));
  assert.match(r.stderr, /no off-chip EK certificate for the ecc-p256 EK: .*HTTP 404/);
  assert.deepEqual(service.asked, [path, offChipEkCertPaths(eccEk, "intel")[0]]);
  assert.equal(readdirSync(cacheDir).length, 1);

  // the second time the RSA certificate comes from the cache
  service.asked.length = 0;
  const again = await identify(client, { fetch: { vendor: "intel", baseUrl: service.base, cacheDir } });
  assert.deepEqual(again.identity.ekCertificates, identity.ekCertificates);
  assert.ok(again.notes.some((n) => n.includes("from the cache")));
  assert.deepEqual(service.asked, [offChipEkCertPaths(eccEk, "intel")[0]]);

  // the service keeps it with the EK and trusts the host by it (v2), as an NV certificate
  const store = await openStore(join(dir, "s.db"));
  try {
    await trustTestEkRoot(store);
    const reg = await addHost(store, { name: "ptt-laptop", hardwareClass: "laptops", identity }, { actor: "test", now: Date.now() });
    assert.equal(reg.ekTrust.method, "ek-cert");
  } finally {
    await store.close();
  }
});

test("AMD: a DER answer at tpm2-tools' lower-case path is found after the upper-case one", async () => {
  const der = await ekCertFor(eccEk);
  const [upper, lower] = offChipEkCertPaths(eccEk, "amd");
  service.routes.set(lower, { type: "application/pkix-cert", body: der });
  service.asked.length = 0;
  const r = await identify(client, { fetch: { vendor: "amd", baseUrl: service.base } });
  const p256 = r.eks.find((e) => e.kind === "ecc-p256")!;
  assert.equal(p256.certificateSource, "off-chip");
  assert.equal(p256.certificateUrl, service.base + lower);
  assert.ok(r.identity.ekCertificates.includes(der.toString("base64")));
  assert.deepEqual(service.asked.slice(-2), [upper, lower]);
});

test("attack: a service (or network) answering a certificate for another key is refused, nothing cached; so is --ek-cert of another TPM", async () => {
  const other = await startSwtpm();
  try {
    const oc = new TpmClient(new SwtpmTransport({ port: other.port }));
    const foreign = await createEk(oc, "rsa2048");
    await oc.run(FlushContext, { flushHandle: foreign.handle });
    await oc.close();
    const foreignDer = await ekCertFor(foreign.public);
    const [path] = offChipEkCertPaths(rsaEk, "intel");
    service.routes.set(path, intelAnswer(path, foreignDer));
    const cacheDir = join(dir, "cache-attack");
    await assert.rejects(identify(client, { fetch: { vendor: "intel", baseUrl: service.base, cacheDir } }), isCode("ERR_EK_CERT_MISMATCH"));
    assert.equal(existsSync(cacheDir) ? readdirSync(cacheDir).length : 0, 0);

    const file = join(dir, "foreign.pem");
    writeFileSync(file, certificatePem(foreignDer));
    const r = await cli(["agent", "identify", "--tpm", tpm.tcti, "--ek-cert", file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERR_EK_CERT_MISMATCH/);
  } finally {
    await other.stop();
  }
});

test("--ek-cert FILE supplies a certificate obtained elsewhere; no answer at all is ERR_EK_CERT_UNAVAILABLE; a maker without a service is named", async () => {
  const der = await ekCertFor(eccEk);
  const r = await identify(client, { ekCertificates: [{ der, from: "p256.der" }] });
  assert.equal(r.eks.find((e) => e.kind === "ecc-p256")!.certificateSource, "file");
  assert.deepEqual(r.identity.ekCertificates, [der.toString("base64")]);

  service.routes.clear();
  await assert.rejects(identify(client, { fetch: { vendor: "intel", baseUrl: service.base } }), (e: unknown) => isCode("ERR_EK_CERT_UNAVAILABLE")(e) && /HTTP 404/.test((e as Error).message));
  const none = await cli(["agent", "identify", "--tpm", tpm.tcti, "--fetch-ek-cert", "--ek-cert-cache", join(dir, "c2")]);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /ERR_EK_CERT_UNAVAILABLE/);
  assert.match(none.stderr, /made by "IBM" have no known off-chip EK certificate service/);
});
