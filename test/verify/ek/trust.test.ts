import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { decodeTpm2bPublic } from "../../../src/tpm/structures.js";
import { TpmTrustError } from "../../../src/errors.js";
import { publicKeyFromTpmt, spkiFromTpmt } from "../../../src/crypto/keys.js";
import { certificatePublicKey, classifyCertificates, ekHash, evaluateEkTrust, loadCertificate, requireEkTrust, type EkTrustInput } from "../../../src/verify/ek/index.js";
import { AT } from "./certgen.js";

const EK = "test/fixtures/ek-certs";
const STORE = "test/fixtures/manufacturer-roots/keylime-tpm_cert_store";
const IFX035 = "test/fixtures/manufacturer-roots/infineon-intermediates";

const store = classifyCertificates(readdirSync(STORE).map((f) => ({ cert: loadCertificate(readFileSync(`${STORE}/${f}`)) })));
const int035 = ["RSA", "ECC"].map((a) => loadCertificate(readFileSync(`${IFX035}/IFX_${a}_035.pem`)));
const rsaDer = readFileSync(`${EK}/infineon_rsa_ek.der`);
const eccDer = readFileSync(`${EK}/infineon_ecc_ek.der`);
const rsaPub = decodeTpm2bPublic(readFileSync(`${EK}/infineon_rsa_ek.expected_tpm2b_public.bin`));
const eccPub = decodeTpm2bPublic(readFileSync(`${EK}/infineon_ecc_ek.expected_tpm2b_public.bin`));
const rsaHash = ekHash(rsaPub);

const base: EkTrustInput = { roots: store.roots, intermediates: [...store.intermediates, ...int035], allowlist: new Set(), at: AT };

test("ek-cert passes for the TPM's EK with its certificate; facts and path are reported", () => {
  const r = evaluateEkTrust({ ...base, ekPublic: rsaPub, ekCerts: [rsaDer, eccDer] });
  assert.equal(r.trusted, true);
  assert.equal(r.ekHash, rsaHash);
  assert.equal(r.methods["ek-cert"].passed, true);
  assert.match(r.methods["ek-cert"].reason, /chains to "C=DE, O=Infineon Technologies AG, OU=OPTIGA\(TM\) Devices, CN=Infineon OPTIGA\(TM\) RSA Root CA"/);
  assert.deepEqual(r.methods["ek-key"], { passed: false, code: "ERR_EK_NOT_ALLOWLISTED", reason: `EK hash ${rsaHash} is not allow-listed` });
  assert.equal(r.certificates[0].passed, true);
  assert.equal(r.certificates[0].path?.length, 3);
  assert.equal(r.certificates[1].code, "ERR_KEY_MISMATCH"); // the ECC certificate is not for this EK
  assert.equal(r.tcg?.tpmModel, "SLB 9670 TPM2.0");
  requireEkTrust(r, ["ek-cert"]);
  requireEkTrust(r, ["ek-key", "ek-cert"]);
  assert.throws(() => requireEkTrust(r, ["ek-key"]), (e: TpmTrustError) => e.code === "ERR_EK_NOT_ALLOWLISTED");
});

test("an EK certificate read with its EK's public area takes the key built from that area: its SPKI is that key's DER", () => {
  for (const [der, pub] of [
    [rsaDer, rsaPub],
    [eccDer, eccPub],
  ] as const) {
    const key = publicKeyFromTpmt(pub);
    const cert = loadCertificate(der);
    assert.deepEqual(cert.spki, spkiFromTpmt(pub));
    assert.equal(certificatePublicKey(cert), key);
    assert.equal(evaluateEkTrust({ ...base, ekPublic: pub, ekCerts: [cert] }).methods["ek-cert"].passed, true);
  }
  // the other EK's certificate keeps its own key
  assert.equal(certificatePublicKey(loadCertificate(eccDer)).equals(publicKeyFromTpmt(rsaPub)), false);
});

test("ek-key passes when the EK hash is allow-listed, in any case", () => {
  const r = evaluateEkTrust({ ...base, ekPublic: eccPub, allowlist: new Set([ekHash(eccPub).toUpperCase()]) });
  assert.equal(r.trusted, true);
  assert.equal(r.methods["ek-key"].passed, true);
  assert.deepEqual(r.methods["ek-cert"], { passed: false, code: "ERR_EK_CERT_REQUIRED", reason: "no EK certificate was given" });
  assert.throws(() => requireEkTrust(r, ["ek-cert"]), (e: TpmTrustError) => e.code === "ERR_EK_CERT_REQUIRED");
  // without ekPublic, the certificate's key is hashed
  const fromCert = evaluateEkTrust({ ...base, ekCerts: [eccDer], allowlist: new Set([ekHash(eccPub)]) });
  assert.equal(fromCert.methods["ek-key"].passed, true);
  assert.equal(fromCert.methods["ek-cert"].passed, true);
});

test("neither method: the chain's own reason is kept; ERR_EK_NOT_TRUSTED when several methods were asked", () => {
  const r = evaluateEkTrust({ ...base, intermediates: store.intermediates, ekPublic: rsaPub, ekCerts: [rsaDer] });
  assert.equal(r.trusted, false);
  assert.equal(r.methods["ek-cert"].code, "ERR_CHAIN_UNTRUSTED");
  assert.match(r.methods["ek-cert"].reason, /RSA Manufacturing CA 035" is neither a trusted root nor a known intermediate/);
  assert.deepEqual(r.certificates[0].details?.caIssuers, ["http://pki.infineon.com/OptigaRsaMfrCA035/OptigaRsaMfrCA035.crt"]);
  for (const methods of [["ek-cert"], ["ek-key", "ek-cert"]] as const) {
    assert.throws(
      () => requireEkTrust(r, methods),
      (e: TpmTrustError) => e.code === "ERR_EK_NOT_TRUSTED" && (e.details?.methods as Record<string, { code: string }>)["ek-cert"].code === "ERR_CHAIN_UNTRUSTED",
    );
  }
  const expired = evaluateEkTrust({ ...base, ekCerts: [rsaDer], at: new Date("2040-01-01Z") });
  assert.equal(expired.methods["ek-cert"].code, "ERR_CERT_EXPIRED");
  assert.throws(() => requireEkTrust(expired, []), (e: TpmTrustError) => e.code === "ERR_USAGE");
});

test("a garbled certificate is a per-certificate ERR_PARSE_CERT, an NV-read one passes with its tolerances", () => {
  const nv = Buffer.concat([Buffer.from([0x10, 0x01, 0x00, eccDer.length >> 8, eccDer.length & 0xff]), eccDer, Buffer.alloc(100, 0xff)]);
  const r = evaluateEkTrust({ ...base, ekPublic: eccPub, ekCerts: [rsaDer.subarray(0, 100), nv] });
  assert.equal(r.certificates[0].code, "ERR_PARSE_CERT");
  assert.equal(r.certificates[1].passed, true);
  assert.deepEqual(
    r.certificates[1].tolerances?.map((t) => t.code),
    ["nv-prefix", "ff-padding"],
  );
  assert.equal(r.methods["ek-cert"].passed, true);
  // an unusable ekPublic is the caller's error
  assert.throws(() => evaluateEkTrust({ ...base, ekPublic: Buffer.from("junk") }), (e: TpmTrustError) => e.code === "ERR_PARSE_FORMAT");
});
