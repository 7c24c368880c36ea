/**
 * The AIK-info variant of the Windows key attestation request (szOID_ENROLL_AIK_INFO, MS-WCCE
 * 2.2.2.7.15) against the real service over HTTP, the client made of tpm2-tools + openssl on swtpm:
 * its AIK, activated with tpmtrust (POST /v1/activations answered by tpm2_activatecredential), holds
 * the AK certificate of tpmtrust's attestation CA; the request carries the KAST and the AIK info
 * (AIKpub and that certificate, `openssl cms -encrypt` to the exchange certificate) and is answered at
 * once with the certificate, stamped with the policy of the host's EK proof (.31 by EK certificate,
 * .30 by allow-listed EK). Negative twins, each with its code: an AIK certificate from another CA
 * (one that calls itself tpmtrust's attestation CA), none at all, another TPM's AK certificate with
 * this TPM's KAST, a tampered KAST, the host disabled, its EK revoked, its AK certificate revoked,
 * the host removed.
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AsnParser } from "@peculiar/asn1-schema";
import * as x509 from "@peculiar/x509";
import { CA_OID } from "../../src/ca/oids.js";
import { CMCStatusInfo, PKIResponse } from "../../src/verify/cmc.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { api } from "../e2e/harness.js";
import { runTool } from "../helpers/tpm2tools.js";
import { readCmcResponse, type TpmKey } from "../helpers/windows-client.js";
import { activateAik, aikRequest, post, problem, setup, type CmcSetting, type Sent } from "../helpers/cmc.js";

let s: CmcSetting;
let certA: Buffer;
let certB: Buffer;
const HOST_A = "win11.example.test";
const HOST_B = "win10.example.test";

before(async () => {
  s = await setup();
  certA = await activateAik(s.a, HOST_A, s.ekCertA);
  certB = await activateAik(s.b, HOST_B);
});
after(async () => {
  await s?.close();
});

/** The issued certificate of a 201 answer, read as a client does (`openssl cms -verify`), and the CMC status. */
async function issued(r: Sent, dir: string): Promise<{ leaf: x509.X509Certificate; status: number }> {
  assert.equal(r.status, 201, r.body.toString());
  const { pkiResponse, certificatesPem } = await readCmcResponse(dir, r.body, s.rootPem);
  const resp = AsnParser.parse(pkiResponse, PKIResponse);
  const status = AsnParser.parse(resp.controlSequence.find((t) => t.attrType === "1.3.6.1.5.5.7.7.1")!.attrValues[0], CMCStatusInfo);
  const leaf = (certificatesPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((p) => new x509.X509Certificate(p)).find((c) => c.serialNumber === r.headers.get("tpmtrust-serial"));
  assert.ok(leaf, "the issued certificate is in the response");
  return { leaf, status: status.cMCStatus };
}

const policiesOf = (c: x509.X509Certificate) => [...(c.getExtension(x509.CertificatePolicyExtension)?.policies ?? [])];

test("AIK info with the AK certificate of tpmtrust's attestation CA: issued at once, stamped with the host's EK proof (ek-cert .31; allow-listed EK .30)", async () => {
  const { request, key } = await aikRequest(s.a, { aikCert: certA });
  const a = await issued(await post(request), s.a.dir);
  assert.equal(a.status, 0, "cMCStatus success");
  assert.equal(a.leaf.subject, `CN=${HOST_A}`);
  assert.deepEqual(policiesOf(a.leaf), [CA_OID.ekCert]);
  assert.equal(Buffer.from(a.leaf.publicKey.rawData).toString("hex"), key.spki.toString("hex"), "the certificate is for the key the KAST attested");
  const audit = await s.svc.server.store.audit.list({ action: "ca.certificate.issue", newestFirst: true, limit: 1 });
  const d = audit[0].details as any;
  assert.deepEqual([d.format, d.host, d.aikCertSerial, d.serial], ["kast-aik", HOST_A, new x509.X509Certificate(new Uint8Array(certA)).serialNumber.toLowerCase(), a.leaf.serialNumber.toLowerCase()]);

  const b = await issued(await post((await aikRequest(s.b, { subject: `CN=${HOST_B}`, aikCert: certB })).request), s.b.dir);
  assert.deepEqual(policiesOf(b.leaf), [CA_OID.ekKey]);
});

test("negative twins: an AIK certificate from another CA, none, another TPM's AK certificate with this TPM's KAST, a tampered KAST", async () => {
  // another CA that calls itself tpmtrust's attestation CA certifies A's AIKpub with the AIK EKU
  const w = (n: string) => join(s.dir, n);
  writeFileSync(w("aik-a.der"), s.a.aik.spki);
  await runTool("openssl", ["pkey", "-pubin", "-inform", "DER", "-in", w("aik-a.der"), "-out", w("aik-a.pem")]);
  await runTool("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=tpmtrust/CN=tpmtrust attestation CA", "-days", "1", "-keyout", w("oca.key"), "-out", w("oca.pem")]);
  await runTool("openssl", ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", `/O=tpmtrust/CN=${HOST_A}`, "-keyout", w("tmp.key"), "-out", w("tmp.csr")]);
  writeFileSync(w("aik.ext"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=2.23.133.8.3\n");
  await runTool("openssl", ["x509", "-req", "-in", w("tmp.csr"), "-force_pubkey", w("aik-a.pem"), "-CA", w("oca.pem"), "-CAkey", w("oca.key"), "-CAcreateserial", "-days", "1", "-extfile", w("aik.ext"), "-outform", "DER", "-out", w("other-aik.der")]);
  const foreign = problem(await post((await aikRequest(s.a, { aikCert: readFileSync(w("other-aik.der")) })).request), 422, "ERR_CHAIN_UNTRUSTED");
  assert.equal(foreign.details.adcsEvent, 22);
  assert.equal(foreign.details.hresult, "0x8009481A");
  const audit = await s.svc.server.store.audit.list({ newestFirst: true, limit: 2 });
  assert.deepEqual(audit.map((e) => e.action).sort(), ["ca.attestation.error", "ca.request.denied"]);
  assert.equal((audit.find((e) => e.action === "ca.attestation.error")!.details as any).format, "kast-aik");

  problem(await post((await aikRequest(s.a)).request), 422, "ERR_CHAIN_UNTRUSTED");
  // B's AIKpub and AK certificate (both public) with A's KAST; A's AIKpub with B's certificate
  problem(await post((await aikRequest(s.a, { aikCert: certB, aikSpki: s.b.aik.spki })).request), 422, "ERR_KEY_MISMATCH");
  problem(await post((await aikRequest(s.a, { aikCert: certB })).request), 422, "ERR_KEY_MISMATCH");
  // one bit of the KADS signature flipped
  const tampered = async (k: TpmKey) => {
    const st = Buffer.from(await s.a.statement(k));
    const ka = 28 + st.readUInt32LE(16);
    st[ka + 24 + st.readUInt32LE(ka + 12) + 7] ^= 1;
    return st;
  };
  const t = problem(await post((await aikRequest(s.a, { aikCert: certA, statement: tampered })).request), 422, "ERR_SIGNATURE_INVALID");
  assert.equal(t.details.adcsEvent, 22);
});

test("the host behind the AK is judged now: disabled, EK revoked, AK certificate revoked, host removed", async () => {
  const ask = async () => post((await aikRequest(s.b, { subject: `CN=${HOST_B}`, aikCert: certB })).request);
  assert.equal((await api(s.svc.url, "POST", `/v1/hosts/${HOST_B}/disable`, undefined, s.svc.admin)).status, 200);
  problem(await ask(), 403, "ERR_DISABLED");
  assert.equal((await api(s.svc.url, "POST", `/v1/hosts/${HOST_B}/enable`, undefined, s.svc.admin)).status, 200);

  const h = ekHash(s.b.ekSpki);
  assert.equal((await api(s.svc.url, "POST", "/v1/trust/revoked-eks", { ekHash: h, reason: "test" }, s.svc.admin)).status, 201);
  const revoked = problem(await ask(), 422, "ERR_EK_NOT_TRUSTED");
  assert.equal(revoked.details.adcsEvent, 53);
  assert.equal((await api(s.svc.url, "DELETE", `/v1/trust/revoked-eks/${h}`, undefined, s.svc.admin)).status, 204);
  assert.equal((await ask()).status, 201, "trusted again once the revocation is lifted");

  const serial = new x509.X509Certificate(new Uint8Array(certB)).serialNumber.toLowerCase();
  assert.equal((await api(s.svc.url, "POST", `/v1/ca/certs/${serial}/revoke`, { reason: "keyCompromise" }, s.svc.admin)).status, 200);
  problem(await ask(), 422, "ERR_CERT_REVOKED");

  assert.equal((await api(s.svc.url, "DELETE", `/v1/hosts/${HOST_A}`, undefined, s.svc.admin)).status, 204);
  problem(await post((await aikRequest(s.a, { aikCert: certA })).request), 422, "ERR_AK_NOT_BOUND");
});
