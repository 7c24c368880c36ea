/**
 * The negative twins of Windows key-attestation requests (test/ca/windows-request.test.ts), built by
 * the same tpm2-tools + openssl client: `tpmtrust ca inspect-request` refuses another AIK's
 * signature, a key blob that is not the certified key and a CSR key that is not the attested key
 * (exit 1), and statements cut at each part's boundary (exit 2).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { kads, kast, pcpKeyBlob, type TpmKey } from "../helpers/windows-client.js";
import { setup, type WindowsRequestSetting } from "../helpers/windows-request.js";

let s: WindowsRequestSetting;
before(async () => {
  s = await setup();
});
after(async () => {
  await s?.close();
});

test("inspect-request negative twins: another AIK's signature, a key blob that is not the certified key, CSR key ≠ attested key (exit 1); truncated statements (exit 2)", async () => {
  const other = await s.win.newKey("otherkey");
  const aikBlob = pcpKeyBlob(s.win.aik.pub, s.win.aik.priv);
  // the AIK of another client (same TPM, other key) signed the TPM2_Certify
  const byOther = kast(s.win.idBinding, await s.win.keyAttestation(s.key, s.win256.aik, "sha256"), aikBlob);
  // the TPM2_Certify of `key`, with the key blob of `other`
  const good = await s.win.keyAttestation(s.key);
  const cbAttest = good.readUInt32LE(12);
  const cbSig = good.readUInt32LE(16);
  const swapped = kast(s.win.idBinding, kads(good.subarray(24, 24 + cbAttest), good.subarray(24 + cbAttest, 24 + cbAttest + cbSig), pcpKeyBlob(other.pub, other.priv)), aikBlob);
  const cases: [string, Buffer, TpmKey, string][] = [
    ["another AIK", byOther, s.key, "ERR_SIGNATURE_INVALID"],
    ["name mismatch", swapped, other, "ERR_NAME_MISMATCH"],
  ];
  for (const [what, statement, csrKey, codeWanted] of cases) {
    const r = await s.inspect(s.write(`neg-${what}.der`, await s.windowsCsr(s.win, csrKey, statement)));
    assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
    const j = r.json();
    assert.equal(j.attestation.verified, false, what);
    assert.equal(j.attestation.key.verified, false, what);
    assert.equal(j.attestation.key.code, codeWanted, what);
  }
  // a valid statement for `key` in a CSR for `other`
  const mismatch = await s.inspect(s.write("neg-csrkey.der", await s.windowsCsr(s.win, other, await s.win.statement(s.key))));
  assert.equal(mismatch.code, 1, mismatch.stdout);
  assert.equal(mismatch.json().attestation.key.verified, true);
  assert.equal(mismatch.json().attestation.key.matchesRequestKey, false);
  assert.equal(mismatch.json().attestation.verified, false);
  // the statement cut at each part's boundary (outer KAST sizes adjusted): unusable input
  const st = await s.win.statement(s.key);
  const cbId = st.readUInt32LE(16);
  const cbKa = st.readUInt32LE(20);
  for (const cut of [24, 24 + cbAttest, 24 + cbAttest + cbSig, 24 + cbAttest + cbSig + 56, cbKa - 1]) {
    const short = Buffer.concat([st.subarray(0, 28), st.subarray(28, 28 + cbId), st.subarray(28 + cbId, 28 + cbId + cut)]);
    short.writeUInt32LE(cut, 20);
    short.writeUInt32LE(0, 24);
    const r = await s.inspect(s.write(`cut-${cut}.der`, await s.windowsCsr(s.win, s.key, short)));
    assert.equal(r.code, 2, `cut ${cut}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /ERR_PARSE_/);
  }
});
