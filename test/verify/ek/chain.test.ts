import "reflect-metadata";
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { generateKeyPairSync, KeyObject } from "node:crypto";
import * as x509 from "@peculiar/x509";
import * as fc from "fast-check";
import * as asn from "@peculiar/asn1-x509";
import { decodeTpm2bPublic } from "../../../src/tpm/structures.js";
import { TpmTrustError } from "../../../src/errors.js";
import {
  classifyCertificates,
  EKU_AIK_CERTIFICATE,
  EKU_EK_CERTIFICATE,
  isSelfSigned,
  loadCertificate,
  validateChain,
  type ChainOptions,
} from "../../../src/verify/ek/index.js";
import { AT, makeCa, makeLeaf, rawName, resign, type Issued } from "./certgen.js";

const EK = "test/fixtures/ek-certs";
const STORE = "test/fixtures/manufacturer-roots/keylime-tpm_cert_store";
const IFX035 = "test/fixtures/manufacturer-roots/infineon-intermediates";

const store = classifyCertificates(readdirSync(STORE).map((f) => ({ cert: loadCertificate(readFileSync(`${STORE}/${f}`)) })));
const int035 = ["RSA", "ECC"].map((a) => loadCertificate(readFileSync(`${IFX035}/IFX_${a}_035.pem`)));
const ek = { rsa: loadCertificate(readFileSync(`${EK}/infineon_rsa_ek.der`)), ecc: loadCertificate(readFileSync(`${EK}/infineon_ecc_ek.der`)) };
const tpmPub = {
  rsa: decodeTpm2bPublic(readFileSync(`${EK}/infineon_rsa_ek.expected_tpm2b_public.bin`)),
  ecc: decodeTpm2bPublic(readFileSync(`${EK}/infineon_ecc_ek.expected_tpm2b_public.bin`)),
};

function rejects(opts: ChainOptions, code: string, detail?: RegExp): TpmTrustError {
  try {
    validateChain(opts);
  } catch (e) {
    assert.ok(e instanceof TpmTrustError, String(e));
    assert.equal(e.code, code, e.message);
    if (detail) assert.match(e.message, detail);
    return e;
  }
  assert.fail(`expected ${code}`);
}

test("the keylime store: self-signed certificates are roots, the others intermediates", () => {
  assert.equal(store.roots.length + store.intermediates.length, 51 - 6); // 6 files repeat another file's certificate
  assert.ok(store.roots.every(isSelfSigned));
  assert.ok(store.intermediates.every((c) => !isSelfSigned(c)));
  assert.ok(store.roots.some((c) => c.subject.text.endsWith("CN=Infineon OPTIGA(TM) RSA Root CA")));
  // cross-signed by VeriSign: not self-signed, so not a root without a folder saying so
  assert.ok(store.intermediates.some((c) => c.subject.text.endsWith("CN=IFX TPM EK Root CA")));
});

for (const alg of ["rsa", "ecc"] as const) {
  const ALG = alg.toUpperCase();
  test(`real Infineon ${ALG} EK certificate chains through CA 035 to the Infineon ${ALG} root, key = the TPM's EK`, () => {
    const r = validateChain({
      leaf: ek[alg],
      roots: store.roots,
      intermediates: [...store.intermediates, ...int035],
      at: AT,
      requiredEku: EKU_EK_CERTIFICATE,
      expectedKey: tpmPub[alg],
    });
    assert.deepEqual(
      r.path.map((c) => c.subject.rdns.flat().find((a) => a.type === "2.5.4.3")?.value ?? "(empty)"),
      ["(empty)", `Infineon OPTIGA(TM) ${ALG} Manufacturing CA 035`, `Infineon OPTIGA(TM) ${ALG} Root CA`],
    );
    assert.equal(r.anchor, r.path[2]);
    assert.deepEqual(r.tolerances, []);
  });

  test(`${ALG} EK negatives: missing intermediate, wrong root, other TPM's key, expired, not yet valid, wrong EKU`, () => {
    const base = { leaf: ek[alg], roots: store.roots, intermediates: [...store.intermediates, ...int035], at: AT };
    const missing = rejects({ ...base, intermediates: store.intermediates }, "ERR_CHAIN_UNTRUSTED", /Manufacturing CA 035" is neither a trusted root nor a known intermediate/);
    assert.match(String((missing.details?.caIssuers as string[])[0]), /^http:\/\/pki\.infineon\.com\/Optiga(Rsa|Ecc)MfrCA035\//);
    assert.equal(missing.details?.authorityKeyIdentifier, ek[alg].authorityKeyIdentifier);
    const otherRoots = store.roots.filter((c) => !c.subject.text.includes("Infineon OPTIGA"));
    rejects({ ...base, roots: otherRoots }, "ERR_CHAIN_UNTRUSTED", /OPTIGA\(TM\) Devices/);
    rejects({ ...base, expectedKey: tpmPub[alg === "rsa" ? "ecc" : "rsa"] }, "ERR_KEY_MISMATCH");
    const expired = rejects({ ...base, at: new Date("2033-03-02T00:00:00Z") }, "ERR_CERT_EXPIRED", /expired at 2033-03-02/);
    assert.equal(expired.details?.notAfter, ek[alg].notAfter.toISOString());
    // the 035 CA certificate in circulation is a 2023 re-issue: before that the path is not valid
    const early = rejects({ ...base, at: new Date("2019-06-01T00:00:00Z") }, "ERR_CERT_EXPIRED", /not yet valid/);
    assert.match(String(early.details?.certificate), /Manufacturing CA 035$/);
    rejects({ ...base, requiredEku: EKU_AIK_CERTIFICATE }, "ERR_CERT_EKU");
  });

  test(`${ALG} EK with a tampered signature or tampered TBS is ERR_CHAIN_INVALID`, () => {
    const sig = Buffer.from(ek[alg].der);
    sig[sig.length - 3] ^= 0x01;
    const tbs = Buffer.from(ek[alg].der);
    const model = tbs.indexOf(Buffer.from("SLB 9670"));
    tbs[model] = "X".charCodeAt(0);
    for (const der of [sig, tbs]) {
      rejects({ leaf: loadCertificate(der), roots: store.roots, intermediates: int035, at: AT }, "ERR_CHAIN_INVALID", /signature does not verify/);
    }
  });
}

async function pki() {
  const root = await makeCa({ name: "CN=Test Root", slot: 0 });
  const inter = await makeCa({ name: "CN=Test Intermediate", issuer: root, slot: 1, pathLength: 0 });
  const leaf = await makeLeaf({ issuer: inter });
  const c = (i: Issued) => loadCertificate(i.der);
  return { root, inter, leaf, opts: { leaf: c(leaf), intermediates: [c(inter)], roots: [c(root)], at: AT, requiredEku: EKU_EK_CERTIFICATE } };
}

test("generated chain: passes, and each certificate is checked at the injected time", async () => {
  const { opts, inter, root } = await pki();
  assert.equal(validateChain(opts).path.length, 3);
  const shortInter = await makeCa({ name: "CN=Test Intermediate", issuer: root, slot: 1, notAfter: new Date("2024-01-01Z") });
  const e = rejects({ ...opts, intermediates: [loadCertificate(shortInter.der)] }, "ERR_CERT_EXPIRED");
  assert.equal(e.details?.certificate, "CN=Test Intermediate");
  const shortRoot = await makeCa({ name: "CN=Test Root", slot: 0, notBefore: new Date("2025-07-01Z") });
  rejects({ ...opts, roots: [loadCertificate(shortRoot.der)] }, "ERR_CERT_EXPIRED", /CN=Test Root: not yet valid/);
  // an intermediate pinned as trust anchor is enough; the root need not be present
  assert.equal(validateChain({ ...opts, roots: [loadCertificate(inter.der)], intermediates: [] }).path.length, 2);
});

test("a CA without basicConstraints, with cA false, without keyCertSign, or beyond pathLen is ERR_CHAIN_INVALID", async () => {
  const { root, opts } = await pki();
  const leafOf = async (inter: Issued) => ({ ...opts, leaf: loadCertificate((await makeLeaf({ issuer: inter })).der), intermediates: [loadCertificate(inter.der)] });
  const noBc = await makeCa({ name: "CN=Test Intermediate", issuer: root, slot: 1, pathLength: null });
  rejects(await leafOf(noBc), "ERR_CHAIN_INVALID", /no basicConstraints/);
  const notCa = await makeCa({ name: "CN=Test Intermediate", issuer: root, slot: 1, ca: false });
  rejects(await leafOf(notCa), "ERR_CHAIN_INVALID", /not a CA/);
  const noSign = await makeCa({ name: "CN=Test Intermediate", issuer: root, slot: 1, keyUsage: x509.KeyUsageFlags.digitalSignature });
  rejects(await leafOf(noSign), "ERR_CHAIN_INVALID", /keyCertSign/);
  const tightRoot = await makeCa({ name: "CN=Test Root", slot: 0, pathLength: 0 });
  const inter = await makeCa({ name: "CN=Test Intermediate", issuer: tightRoot, slot: 1 });
  rejects({ ...(await leafOf(inter)), roots: [loadCertificate(tightRoot.der)] }, "ERR_CHAIN_INVALID", /pathLenConstraint 0 exceeded/);
  // a root without basicConstraints cannot anchor either (X509ChainBuilder would accept it)
  const bareRoot = await makeCa({ name: "CN=Test Root", slot: 0, pathLength: null });
  rejects({ ...opts, roots: [loadCertificate(bareRoot.der)] }, "ERR_CHAIN_INVALID", /CN=Test Root: issues certificates but has no basicConstraints/);
});

test("leaf rules: wrong EKU, missing EKU (tolerated), CA leaf, AK certificates with 2.23.133.8.3", async () => {
  const { inter, opts } = await pki();
  const withEku = async (eku: string[] | null, ca = false) => ({ ...opts, leaf: loadCertificate((await makeLeaf({ issuer: inter, eku, ca })).der) });
  const wrong = rejects(await withEku(["1.3.6.1.5.5.7.3.2"]), "ERR_CERT_EKU");
  assert.deepEqual(wrong.details?.present, ["1.3.6.1.5.5.7.3.2"]);
  const none = validateChain(await withEku(null));
  assert.deepEqual(
    none.tolerances.map((t) => t.code),
    ["eku-absent"],
  );
  rejects(await withEku(["2.23.133.8.1"], true), "ERR_CHAIN_INVALID", /a CA certificate cannot be/);
  const ak = await withEku([EKU_AIK_CERTIFICATE]);
  assert.equal(validateChain({ ...ak, requiredEku: EKU_AIK_CERTIFICATE }).path.length, 3);
  rejects(ak, "ERR_CERT_EKU");
});

test("critical extensions: unknown ones reject, TCG ones and certificatePolicies are tolerated and reported", async () => {
  const { inter, opts } = await pki();
  const leafWith = async (ext: x509.Extension) => ({ ...opts, leaf: loadCertificate((await makeLeaf({ issuer: inter, extensions: [ext] })).der) });
  rejects(await leafWith(new x509.Extension("1.2.3.4.5", true, new Uint8Array([5, 0]))), "ERR_CHAIN_INVALID", /unsupported critical extension 1\.2\.3\.4\.5/);
  const tcg = validateChain(await leafWith(new x509.Extension("2.23.133.2.18", true, new Uint8Array([0x30, 0]))));
  assert.deepEqual(
    tcg.tolerances.map((t) => [t.code, t.detail]),
    [["unknown-critical-tcg-extension", "2.23.133.2.18"]],
  );
  const cp = validateChain(await leafWith(new x509.CertificatePolicyExtension(["1.2.276.0.68.1.20.1"], true)));
  assert.deepEqual(
    cp.tolerances.map((t) => t.code),
    ["critical-certificate-policies"],
  );
});

test("SHA-1 signed intermediates are a reported tolerance, or rejected on request", async () => {
  // a WebCrypto RSA key carries its hash: the root's key signs with SHA-1
  const root = await makeCa({ name: "CN=Old Root", kind: "rsa-sha1", slot: 0 });
  const inter = await makeCa({ name: "CN=Old Intermediate", issuer: root, kind: "rsa", slot: 1 });
  const leaf = await makeLeaf({ issuer: inter });
  const opts = { leaf: loadCertificate(leaf.der), intermediates: [loadCertificate(inter.der)], roots: [loadCertificate(root.der)], at: AT };
  assert.equal(loadCertificate(inter.der).signatureAlgorithm.oid, "1.2.840.113549.1.1.5");
  assert.deepEqual(
    validateChain(opts).tolerances.map((t) => [t.code, t.certificate]),
    [["sha1-signature", "CN=Old Intermediate"]],
  );
  rejects({ ...opts, allowSha1: false }, "ERR_CHAIN_INVALID", /SHA-1/);
});

test("RSA-PSS and RSA PKCS#1 signatures verify; mismatched algorithms do not", async () => {
  const root = await makeCa({ name: "CN=PSS Root", kind: "rsa-pss", slot: 0 });
  const leaf = await makeLeaf({ issuer: root });
  const leafCert = loadCertificate(leaf.der);
  assert.equal(leafCert.signatureAlgorithm.oid, "1.2.840.113549.1.1.10");
  assert.equal(validateChain({ leaf: leafCert, roots: [loadCertificate(root.der)], at: AT }).path.length, 2);
  const rsaRoot = await makeCa({ name: "CN=RSA Root", kind: "rsa", slot: 0 });
  const rsaLeaf = loadCertificate((await makeLeaf({ issuer: rsaRoot })).der);
  assert.equal(validateChain({ leaf: rsaLeaf, roots: [loadCertificate(rsaRoot.der)], at: AT }).path.length, 2);
  // an ECDSA-signed certificate under an RSA CA of the same name
  const ecRoot = await makeCa({ name: "CN=RSA Root", kind: "ec", slot: 0 });
  const ecLeaf = await makeLeaf({ issuer: ecRoot });
  const stripped = await resign(ecLeaf.der, ecRoot, (t) => (t.extensions = new asn.Extensions(t.extensions!.filter((e) => e.extnID !== "2.5.29.35"))));
  rejects({ leaf: loadCertificate(stripped), roots: [loadCertificate(rsaRoot.der)], at: AT }, "ERR_CHAIN_INVALID", /an ECDSA signature, but the issuer key is rsa/);
});

test("path building: a re-keyed CA of the same name, a self-signed untrusted root, normalized names", async () => {
  const { root, inter, leaf, opts } = await pki();
  // same subject, another key: skipped by its key identifier
  const rekeyed = await makeCa({ name: "CN=Test Intermediate", issuer: root, slot: 2 });
  assert.equal(validateChain({ ...opts, intermediates: [loadCertificate(rekeyed.der), ...opts.intermediates] }).path.length, 3);
  // without key identifiers, the wrong candidate fails its signature and the right one is tried next
  const noAki = await resign(leaf.der, inter, (t) => (t.extensions = new asn.Extensions(t.extensions!.filter((e) => e.extnID !== "2.5.29.35"))));
  assert.equal(validateChain({ ...opts, leaf: loadCertificate(noAki), intermediates: [loadCertificate(rekeyed.der), ...opts.intermediates] }).path.length, 3);
  // the root only among the intermediates
  rejects({ ...opts, roots: [], intermediates: [...opts.intermediates, ...opts.roots] }, "ERR_CHAIN_UNTRUSTED", /CN=Test Root: self-signed and not a trusted root/);
  // issuer spelt in another case and spacing: matched, and reported
  const odd = await resign(leaf.der, inter, (t) => (t.issuer = rawName([[["2.5.4.3", "test   INTERMEDIATE"]]])));
  const r = validateChain({ ...opts, leaf: loadCertificate(odd) });
  assert.deepEqual(
    r.tolerances.map((t) => t.code),
    ["name-match-normalized"],
  );
});

test("a v1 trust anchor without extensions is accepted and reported; a v1 intermediate is not", async () => {
  const { root, inter, opts } = await pki();
  const v1 = await resign(root.der, root, (t) => {
    t.version = asn.Version.v1;
    delete t.extensions;
  });
  const anchor = loadCertificate(v1);
  assert.equal(anchor.version, 1);
  assert.deepEqual(
    validateChain({ ...opts, roots: [anchor] }).tolerances.map((t) => t.code),
    ["v1-trust-anchor"],
  );
  const v1Inter = await resign(inter.der, root, (t) => {
    t.version = asn.Version.v1;
    delete t.extensions;
  });
  rejects({ ...opts, intermediates: [loadCertificate(v1Inter)] }, "ERR_CHAIN_INVALID", /no basicConstraints/);
});

test("expectedKey accepts a KeyObject and an SPKI, and a leaf for the key passes", async () => {
  const { opts, leaf } = await pki();
  const key = KeyObject.from(leaf.publicKey);
  assert.equal(validateChain({ ...opts, expectedKey: key }).path.length, 3);
  assert.equal(validateChain({ ...opts, expectedKey: key.export({ type: "spki", format: "der" }) }).path.length, 3);
  rejects({ ...opts, expectedKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey }, "ERR_KEY_MISMATCH");
  // parse-time tolerances of path certificates are part of the result
  const nv = loadCertificate(Buffer.concat([Buffer.from([0x10, 0x01, 0x00, leaf.der.length >> 8, leaf.der.length & 0xff]), leaf.der, Buffer.alloc(16, 0xff)]));
  assert.deepEqual(
    validateChain({ ...opts, leaf: nv }).tolerances.map((t) => t.code),
    ["nv-prefix", "ff-padding"],
  );
});

test("property: mutated real EK certificates are accepted only unchanged, and only ever fail with TpmTrustError", () => {
  const intermediates = [...store.intermediates, ...int035];
  fc.assert(
    fc.property(fc.constantFrom(ek.rsa.der, ek.ecc.der), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (base, flips) => {
      const b = Buffer.from(base);
      for (const [i, v] of flips) b[i % b.length] = v;
      try {
        validateChain({ leaf: loadCertificate(b), roots: store.roots, intermediates, at: AT });
        // the signature covers the TBS: whatever the flips hit, the signed part is unchanged
        assert.ok(loadCertificate(b).tbs.equals(loadCertificate(base).tbs));
      } catch (e) {
        if (!(e instanceof TpmTrustError)) throw e;
      }
    }),
    { numRuns: 200 },
  );
});
