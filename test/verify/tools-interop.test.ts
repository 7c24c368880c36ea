/**
 * Everything tpm2-tools produces against a real swtpm verifies in tpmtrust, through the CLI contract
 * operators script (`tpmtrust verify quote|certify`, `tpm inspect`); the negative twins are rejected
 * with their stable codes.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { makeArtefacts, QUOTE_NONCE, TOOLS_CERTIFY_NONCE, CREDENTIAL_SECRET, type Artefacts } from "../helpers/artefacts.js";
import { cli } from "../helpers/cli.js";
import { decodeTpm2bPublic, decodeTpmsAttest, objectName, encodeTpm2bAttest } from "../../src/tpm/structures.js";
import { decodeCredentialFile } from "../../src/crypto/credential.js";
import { loadCertificate, validateChain, EKU_EK_CERTIFICATE, ekHash, ekHashFromCertificate } from "../../src/verify/ek/index.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { TPM_ALG } from "../../src/tpm/constants.js";

let a: Artefacts;
before(async () => {
  a = await makeArtefacts();
});
after(async () => {
  await a?.close();
});

const nonce = QUOTE_NONCE.toString("hex");

test("EK publics: tpmtrust's Names are byte-identical to tpm2_readpublic's", () => {
  for (const ek of ["ek-rsa", "ek-ecc", "ek-ecc384"]) {
    const pub = decodeTpm2bPublic(a.read(`${ek}.pub`));
    assert.deepEqual(objectName(pub), a.read(`${ek}.name`), ek);
  }
  assert.equal(decodeTpm2bPublic(a.read("ek-ecc384.pub")).nameAlg, TPM_ALG.SHA384);
});

test("EK certificates from NV chain to the swtpm local CA and hold the TPM's EK", () => {
  const root = loadCertificate(a.read("ek-ca-root.pem"));
  const inter = loadCertificate(a.read("ek-ca-intermediate.pem"));
  for (const [cert, ek] of [["ek-rsa-cert.der", "ek-rsa.pub"], ["ek-ecc384-cert.der", "ek-ecc384.pub"]]) {
    const leaf = loadCertificate(a.read(cert));
    const pub = decodeTpm2bPublic(a.read(ek));
    const r = validateChain({ leaf, intermediates: [inter], roots: [root], at: new Date(), requiredEku: EKU_EK_CERTIFICATE, expectedKey: pub });
    assert.equal(r.path.length, 3);
    assert.equal(ekHashFromCertificate(leaf), ekHash(publicKeyFromTpmt(pub)));
  }
});

test("credential blobs from tpm2_makecredential parse", () => {
  for (const k of ["rsa", "ecc"]) {
    const c = decodeCredentialFile(a.read(`cred-${k}.blob`));
    assert.equal(c.secret.length, k === "rsa" ? 258 : 70);
  }
  assert.equal(CREDENTIAL_SECRET.length, 32);
});

for (const k of ["rsa", "ecc"]) {
  test(`${k} quote verifies: TPMT_SIGNATURE, PCR file of tpm2_quote -o, YAML of tpm2_pcrread, PEM AK, JSON facts`, async () => {
    const r = await cli(["verify", "quote", "--ak", a.path(`ak-${k}.pub`), "--attest", a.path(`quote-${k}.msg`), "--signature", a.path(`quote-${k}.sig`), "--nonce", nonce, "--pcrs", a.path(`quote-${k}.pcrs`), "--json"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const j = r.json();
    assert.equal(j.verified, true);
    assert.equal(j.attestType, "TPM_ST_ATTEST_QUOTE");
    assert.equal(j.extraData, nonce);
    assert.deepEqual(j.pcrSelect, [{ bank: "sha256", pcrs: [0, 1, 2, 3, 16] }]);
    assert.equal(j.pcrs.sha256["16"], a.pcrs[16].toString("hex"));
    assert.equal(typeof j.clockInfo.clock, "string");

    // a bare SPKI key has no TPM attributes: refused unless --ak-trusted, which says what went unchecked
    const pemArgs = ["verify", "quote", "--ak", a.path(`ak-${k}.pem`), "--attest", a.path(`quote-${k}.msg`), "--signature", a.path(`quote-${k}.sig`), "--nonce", nonce, "--pcrs", a.path("pcrs.yaml")];
    const bare = await cli([...pemArgs, "--json"]);
    assert.equal(bare.code, 2);
    assert.equal(bare.json().code, "ERR_AK_ATTRIBUTES_UNKNOWN");
    const yaml = await cli([...pemArgs, "--ak-trusted"]);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.equal(yaml.stdout.trim(), 'verified\nunchecked: ["restricted","fixedTPM"]');
    assert.deepEqual((await cli([...pemArgs, "--ak-trusted", "--json"])).json().unchecked, ["restricted", "fixedTPM"]);
  });

  test(`${k} quote: raw signature (tpm2_quote -f plain) with --signature-scheme, and TPM2B_ATTEST input`, async () => {
    const attest2b = a.path(`quote-${k}.plain.msg.2b`);
    writeFileSync(attest2b, encodeTpm2bAttest(decodeTpmsAttest(a.read(`quote-${k}.plain.msg`))));
    const scheme = k === "rsa" ? "rsassa-sha256" : "ecdsa-sha256";
    const r = await cli(["verify", "quote", "--ak", a.path(`ak-${k}.pem`), "--ak-trusted", "--attest", attest2b, "--signature", a.path(`quote-${k}.plain`), "--signature-scheme", scheme, "--nonce", nonce]);
    assert.equal(r.code, 0, r.stderr);
  });

  test(`${k} quote negative twins: wrong nonce, other AK, flipped byte, wrong PCR values`, async () => {
    const base = ["verify", "quote", "--attest", a.path(`quote-${k}.msg`), "--signature", a.path(`quote-${k}.sig`), "--json"];
    const wrongNonce = await cli([...base, "--ak", a.path(`ak-${k}.pub`), "--nonce", "00".repeat(32)]);
    assert.equal(wrongNonce.code, 1);
    assert.equal(wrongNonce.json().code, "ERR_NONCE_MISMATCH");

    const otherAk = await cli([...base, "--ak", a.path(k === "rsa" ? "ak-rsa2.pub" : "ak-rsa.pub"), "--nonce", nonce]);
    assert.equal(otherAk.code, 1);
    assert.equal(otherAk.json().code, k === "rsa" ? "ERR_SIGNATURE_INVALID" : "ERR_SIGNATURE_SCHEME");

    const flipped = Buffer.from(a.read(`quote-${k}.msg`));
    flipped[flipped.length - 5] ^= 0x01; // inside pcrDigest
    writeFileSync(a.path(`quote-${k}.flipped`), flipped);
    const f = await cli(["verify", "quote", "--ak", a.path(`ak-${k}.pub`), "--attest", a.path(`quote-${k}.flipped`), "--signature", a.path(`quote-${k}.sig`), "--nonce", nonce, "--json"]);
    assert.equal(f.code, 1);
    assert.equal(f.json().code, "ERR_SIGNATURE_INVALID");

    const wrong = { sha256: Object.fromEntries(Object.entries(a.pcrs).map(([i, v]) => [i, i === "16" ? "11".repeat(32) : v.toString("hex")])) };
    writeFileSync(a.path("wrong-pcrs.json"), JSON.stringify(wrong));
    const w = await cli([...base, "--ak", a.path(`ak-${k}.pub`), "--nonce", nonce, "--pcrs", a.path("wrong-pcrs.json")]);
    assert.equal(w.code, 1);
    assert.equal(w.json().code, "ERR_PCR_DIGEST_MISMATCH");
  });
}

for (const ak of ["rsa", "ecc"]) {
  test(`certify by the ${ak} AK: fixed key verifies; duplicable key, wrong key and wrong nonce are rejected`, async () => {
    const args = (key: string, att: string, n = TOOLS_CERTIFY_NONCE.toString("hex")) => [
      "verify", "certify", "--ak", a.path(`ak-${ak}.pub`), "--attest", a.path(`certify-${att}.by-${ak}.attest`), "--signature", a.path(`certify-${att}.by-${ak}.sig`), "--key", a.path(`key-${key}.pub`), "--nonce", n, "--json",
    ];
    const ok = await cli(args("fixed", "fixed"));
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const j = ok.json();
    assert.equal(j.attestType, "TPM_ST_ATTEST_CERTIFY");
    assert.equal(j.certifiedName, objectName(decodeTpm2bPublic(a.read("key-fixed.pub"))).toString("hex"));
    assert.ok(j.attributes.includes("fixedTPM") && !j.attributes.includes("restricted"));

    const dup = await cli(args("dup", "dup"));
    assert.equal(dup.code, 1);
    assert.equal(dup.json().code, "ERR_KEY_NOT_FIXED_TPM");

    const mismatch = await cli(args("dup", "fixed"));
    assert.equal(mismatch.json().code, "ERR_NAME_MISMATCH");

    const n = await cli(args("fixed", "fixed", "01020304"));
    assert.equal(n.json().code, "ERR_NONCE_MISMATCH");
  });
}

test("unusable input exits 2 with a typed code; tpm inspect auto-detects structures", async () => {
  const missing = await cli(["verify", "quote", "--ak", a.path("nope"), "--attest", a.path("quote-rsa.msg"), "--signature", a.path("quote-rsa.sig"), "--json"]);
  assert.equal(missing.code, 2);
  assert.equal(missing.json().code, "ERR_IO");
  writeFileSync(a.path("junk"), Buffer.from("not a structure"));
  const junkKey = await cli(["verify", "quote", "--ak", a.path("junk"), "--attest", a.path("quote-rsa.msg"), "--signature", a.path("quote-rsa.sig")]);
  assert.equal(junkKey.code, 2);
  assert.match(junkKey.stderr, /^error ERR_PARSE_FORMAT: /);
  assert.doesNotMatch(junkKey.stderr, /at .*\.ts:\d+/); // no stack trace
  // bytes without TPM_GENERATED_VALUE were not made by a TPM: evidence rejected, not unreadable
  const junk = await cli(["verify", "quote", "--ak", a.path("ak-rsa.pub"), "--attest", a.path("junk"), "--signature", a.path("quote-rsa.sig")]);
  assert.equal(junk.code, 1);
  assert.match(junk.stderr, /^error ERR_MAGIC: /);

  const usage = await cli(["verify", "quote", "--ak", a.path("ak-rsa.pub")]);
  assert.equal(usage.code, 2);

  for (const [file, type] of [["quote-rsa.msg", "TPMS_ATTEST"], ["ak-ecc.pub", "TPM2B_PUBLIC"], ["quote-ecc.sig", "TPMT_SIGNATURE"]]) {
    const r = await cli(["tpm", "inspect", a.path(file)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json().type, type);
  }
  const pub = (await cli(["tpm", "inspect", a.path("ak-rsa.pub")])).json().value;
  assert.deepEqual(pub.attributeNames.sort(), ["fixedParent", "fixedTPM", "restricted", "sensitiveDataOrigin", "sign", "userWithAuth"].sort());
  assert.equal(pub.name, readFileSync(a.path("ak-rsa.name")).toString("hex"));
});

test("makecredential writes a tpm2-tools credential file for the EK", async () => {
  const name = a.read("ak-rsa.name").toString("hex");
  const r = await cli(["makecredential", "--ek", a.path("ek-rsa.pub"), "--name", name, "--secret", a.path("secret.bin"), "--out", a.path("cred-tpmtrust.blob")]);
  assert.equal(r.code, 0, r.stderr);
  const c = decodeCredentialFile(a.read("cred-tpmtrust.blob"));
  assert.equal(c.secret.length, 258);
});
