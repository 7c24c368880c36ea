/**
 * The Windows key attestation round trip (MS-WCCE CMC EK challenge) against the real service over
 * HTTP on 127.0.0.1, with a Windows-shaped client made of tpm2-tools + openssl on swtpm: the EK info
 * encrypted by `openssl cms -encrypt` to the CA's exchange certificate, a KAST around
 * tpm2_certifycreation / tpm2_certify output, the CMC request signed by `openssl cms -sign`, the CA's
 * responses checked by `openssl cms -verify`, the challenge answered by tpm2_activatecredential; the
 * certificate carries the policy of the trust model that passed. Negative twins: test/ca/cmc-attacks.test.ts.
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { CA_OID } from "../../src/ca/oids.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { api } from "../e2e/harness.js";
import { CIPHERS, initial, post, problem, readChallenge, setup, type CmcSetting } from "../helpers/cmc.js";
import { readCmcResponse } from "../helpers/windows-client.js";

let s: CmcSetting;
before(async () => {
  s = await setup();
});
after(async () => {
  await s?.close();
});

test("round trip: CMC request with KAST and EK info → pending response with the EK challenge → tpm2_activatecredential → certificate with the ek-cert policy; a replayed answer is refused", async () => {
  const { request, key } = await initial(s.a, { ekCert: s.ekCertA });
  const ch = await readChallenge(s.a, await post(request));
  // the response carries the exchange certificate (and its SHA-1) and the CA chain
  const xchg = new x509.X509Certificate(s.xchgPem);
  assert.equal(ch.xchgHash.toString("hex"), Buffer.from(await xchg.getThumbprint("SHA-1")).toString("hex"));
  assert.equal((ch.certificatesPem.match(/BEGIN CERTIFICATE/g) ?? []).length, 3);
  assert.equal(ch.cipher, "2.16.840.1.101.3.4.1.42", "the cipher the EK info came in (openssl -aes256)");
  const answer = await s.a.answer(ch.challenge, s.xchgPem, CIPHERS[ch.cipher]);
  const r = await post(answer, { requestId: ch.requestId });
  assert.equal(r.status, 201, r.body.toString());
  const { certificatesPem } = await readCmcResponse(s.a.dir, r.body, s.rootPem);
  const certs = (certificatesPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((p) => new x509.X509Certificate(p));
  const leaf = certs.find((c) => c.serialNumber === r.headers.get("tpmtrust-serial"))!;
  assert.ok(leaf, "the issued certificate is in the response");
  assert.equal(leaf.subject, "CN=win11.example.test");
  assert.deepEqual([...(leaf.getExtension(x509.CertificatePolicyExtension)?.policies ?? [])], [CA_OID.ekCert]);
  // the certificate is for the TPM key the KAST attested
  assert.equal(Buffer.from(leaf.publicKey.rawData).toString("hex"), key.spki.toString("hex"));
  const audit = await s.svc.server.store.audit.list({ limit: 20 });
  const issued = audit.find((e) => e.action === "ca.certificate.issue" && (e.details as any).requestId === ch.requestId);
  assert.ok(issued, "issuance audited with the request id");
  assert.equal((issued!.details as any).format, "kast-ek");
  assert.ok(audit.some((e) => e.action === "ca.request.pending" && (e.details as any).requestId === ch.requestId));

  // the same answer again: the challenge is spent
  const again = problem(await post(answer, { requestId: ch.requestId }), 422, "ERR_NONCE_REUSED");
  assert.equal(again.details.adcsEvent, 22);
  assert.equal(again.details.hresult, "0x8009481A");
});

test("an untrusted EK is refused at the first request (event 53, CERTSRV_E_INVALID_EK); once allow-listed it passes ek-key, in base64 bodies answered in base64", async () => {
  const { request } = await initial(s.b);
  const refused = problem(await post(request), 422, "ERR_EK_NOT_TRUSTED");
  assert.equal(refused.details.adcsEvent, 53);
  assert.equal(refused.details.hresult, "0x80094817", "CERTSRV_E_INVALID_EK: ek-cert failed");
  const denied = await s.svc.server.store.audit.list({ action: "ca.request.denied", newestFirst: true, limit: 1 });
  assert.equal((denied[0].details as any).code, "ERR_EK_NOT_TRUSTED");
  assert.equal((denied[0].details as any).ekHash, ekHash(s.b.ekSpki));

  assert.equal((await api(s.svc.url, "POST", "/v1/trust/allowlist", { ekHash: ekHash(s.b.ekSpki), label: "win-b" }, s.svc.admin)).status, 201);
  const text = await post(request.toString("base64").replace(/.{64}/g, "$&\r\n"));
  assert.equal(text.status, 202, text.body.toString());
  assert.match(text.headers.get("content-type") ?? "", /encoding=base64/);
  const ch = await readChallenge(s.b, { ...text, body: Buffer.from(text.body.toString(), "base64") });
  const answer = await s.b.answer(ch.challenge, s.xchgPem, CIPHERS[ch.cipher]);
  const r = await post(answer.toString("base64"), { requestId: ch.requestId });
  assert.equal(r.status, 201, r.body.toString());
  const { certificatesPem } = await readCmcResponse(s.b.dir, Buffer.from(r.body.toString(), "base64"), s.rootPem);
  const leaf = (certificatesPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((p) => new x509.X509Certificate(p)).find((c) => c.serialNumber === r.headers.get("tpmtrust-serial"))!;
  assert.deepEqual([...(leaf.getExtension(x509.CertificatePolicyExtension)?.policies ?? [])], [CA_OID.ekKey]);
});
