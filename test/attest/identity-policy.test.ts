/** The host identity decoder, the EK trust each policy version demands, and the policy-version rule for attestation. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { decodeHostIdentity, type HostIdentity } from "../../src/attest/identity.js";
import { policySets, type HostPolicy } from "../../src/attest/policies.js";
import { requireForPolicy } from "../../src/trust/trust.js";
import { TpmTrustError } from "../../src/errors.js";
import { TPM_ALG } from "../../src/tpm/constants.js";
import { akTemplate } from "../../src/tpm/commands/index.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { decodeTpm2bPublic, encodeTpm2bPublic, objectName } from "../../src/tpm/structures.js";
import { classifyCertificates, ekHash, evaluateEkTrust, loadCertificate } from "../../src/verify/ek/index.js";

const EK = "test/fixtures/ek-certs";
const STORE = "test/fixtures/manufacturer-roots/keylime-tpm_cert_store";
const rsaPub2b = readFileSync(`${EK}/infineon_rsa_ek.expected_tpm2b_public.bin`);
const eccPub2b = readFileSync(`${EK}/infineon_ecc_ek.expected_tpm2b_public.bin`);
const rsaDer = readFileSync(`${EK}/infineon_rsa_ek.der`);
const eccDer = readFileSync(`${EK}/infineon_ecc_ek.der`);

const identity: HostIdentity = {
  ekPublics: [
    { alg: "rsa2048", public: rsaPub2b.toString("base64") },
    { alg: "ecc-p256", public: eccPub2b.toString("base64") },
  ],
  ekCertificates: [rsaDer.toString("base64"), eccDer.toString("base64")],
  tpm: { manufacturer: "IFX", vendor: "SLB9670", firmware: "7.85" },
};

const rejects = (json: unknown, code: string, re: RegExp) =>
  assert.throws(
    () => decodeHostIdentity(json),
    (e: TpmTrustError) => e.code === code && re.test(e.message),
  );

test("decodeHostIdentity: EKs with their Names, certificates, TPM facts", () => {
  const d = decodeHostIdentity(identity);
  assert.deepEqual(
    d.eks.map((e) => e.alg),
    ["rsa2048", "ecc-p256"],
  );
  assert.deepEqual(d.eks[0].name, objectName(decodeTpm2bPublic(rsaPub2b)));
  assert.deepEqual(d.eks[1].publicArea, eccPub2b.subarray(2));
  assert.deepEqual(d.ekCertificates, [rsaDer, eccDer]);
  assert.deepEqual(d.tpm, identity.tpm);
});

test("decodeHostIdentity rejects, naming the field: unknown or missing fields, bad base64, trailing bytes, a key that is no EK or not its template, the same EK twice", () => {
  rejects({ ...identity, hostname: "x" }, "ERR_VALIDATION", /^identity: unknown field "hostname"/);
  rejects({ ekPublics: identity.ekPublics, tpm: identity.tpm }, "ERR_VALIDATION", /missing field "ekCertificates"/);
  rejects({ ...identity, ekPublics: [] }, "ERR_VALIDATION", /^ekPublics: must have 1 to 16 entries/);
  rejects({ ...identity, ekCertificates: ["AAA"] }, "ERR_VALIDATION", /^ekCertificates\[0\]: must be base64/);
  rejects({ ...identity, tpm: { ...identity.tpm, firmware: 7 } }, "ERR_VALIDATION", /^tpm.firmware: must be a string/);
  rejects({ ...identity, ekPublics: [{ alg: "rsa1024", public: identity.ekPublics[0].public }] }, "ERR_VALIDATION", /^ekPublics\[0\]\.alg: must be one of/);
  const trailing = Buffer.concat([rsaPub2b, Buffer.from([0])]).toString("base64");
  assert.throws(
    () => decodeHostIdentity({ ...identity, ekPublics: [{ alg: "rsa2048", public: trailing }] }),
    (e: TpmTrustError) => e.code === "ERR_PARSE_TRAILING_BYTES" && e.details?.field === "ekPublics[0].public",
  );
  rejects({ ...identity, ekPublics: [{ alg: "rsa3072", public: identity.ekPublics[0].public }] }, "ERR_VALIDATION", /does not match EK template rsa3072/);
  // an AK template with an RSA-2048 unique: right type and size, but a signing key
  const ak = akTemplate();
  assert.equal(ak.type, TPM_ALG.RSA);
  const akAsEk = encodeTpm2bPublic({ ...(ak as Extract<TpmtPublic, { type: typeof TPM_ALG.RSA }>), unique: Buffer.alloc(256, 1) }).toString("base64");
  rejects({ ...identity, ekPublics: [{ alg: "rsa2048", public: akAsEk }] }, "ERR_VALIDATION", /an EK is a restricted decryption key/);
  rejects({ ...identity, ekPublics: [identity.ekPublics[0], identity.ekPublics[0]] }, "ERR_VALIDATION", /^ekPublics\[1\]: the same EK is listed twice/);
  rejects(null, "ERR_VALIDATION", /^identity: must be an object/);
});

test("requireForPolicy: v2 needs a certificate for this EK; v1 falls back to the allow-list", () => {
  const anchors = classifyCertificates(readdirSync(STORE).map((f) => ({ cert: loadCertificate(readFileSync(`${STORE}/${f}`)) })));
  const ek = decodeTpm2bPublic(rsaPub2b);
  const at = new Date("2025-06-01T00:00:00Z");
  const decide = (ekCerts: Buffer[], allowlist: string[], withIntermediate: boolean) => ({
    ...evaluateEkTrust({
      ekPublic: ek,
      ekCerts,
      roots: anchors.roots,
      intermediates: [...anchors.intermediates, ...(withIntermediate ? [loadCertificate(readFileSync("test/fixtures/manufacturer-roots/infineon-intermediates/IFX_RSA_035.pem"))] : [])],
      allowlist: new Set(allowlist),
      at,
    }),
    warnings: [],
  });
  const code = (fn: () => unknown) => {
    try {
      return fn();
    } catch (e) {
      return (e as TpmTrustError).code;
    }
  };
  const listed = [ekHash(ek)];
  // [certificates given, allow-listed, intermediate known] → v2, v1
  const cases: [Buffer[], string[], boolean, string, string][] = [
    [[rsaDer], [], true, "ek-cert", "ek-cert"],
    [[rsaDer], listed, true, "ek-cert", "ek-cert"],
    [[rsaDer], [], false, "ERR_EK_NOT_TRUSTED", "ERR_EK_NOT_TRUSTED"],
    [[rsaDer], listed, false, "ERR_EK_NOT_TRUSTED", "ek-key"],
    [[], [], true, "ERR_EK_CERT_REQUIRED", "ERR_EK_NOT_ALLOWLISTED"],
    [[], listed, true, "ERR_EK_CERT_REQUIRED", "ek-key"],
    // only the ECC EK's certificate: nothing for this EK
    [[eccDer], [], true, "ERR_EK_CERT_REQUIRED", "ERR_EK_NOT_ALLOWLISTED"],
    [[eccDer], listed, true, "ERR_EK_CERT_REQUIRED", "ek-key"],
  ];
  for (const [certs, allow, inter, v2, v1] of cases) {
    const d = decide(certs, allow, inter);
    const what = JSON.stringify({ certs: certs.length, allow: allow.length, inter });
    assert.equal(code(() => requireForPolicy(d, "v2")), v2, `v2 ${what}`);
    assert.equal(code(() => requireForPolicy(d, "v1")), v1, `v1 ${what}`);
  }
});

test("policySets: v2 then v1 side by side; an EK trusted by certificate holds for both, an allow-listed EK only on a v1 host", () => {
  const pol = (id: string, kind: string, policyVersion: "v1" | "v2") => ({ id, kind, name: id, version: 1, hardwareClass: "c", policyVersion, doc: {} }) as unknown as HostPolicy;
  const both = [pol("b2", "baseline", "v2"), pol("ci2", "ci", "v2"), pol("b1", "baseline", "v1"), pol("sb1", "secureboot", "v1")];
  const v2host = { name: "h", hardwareClass: "c", policyVersion: "v2" as const, trustMethod: "ek-cert" };
  const sets = policySets(v2host, both);
  assert.deepEqual(sets.map((s) => [s.policyVersion, s.policies.map((p) => p.id)]), [["v2", ["b2", "ci2"]], ["v1", ["b1", "sb1"]]]);
  // a v1 host (allow-listed EK) is never judged by the v2 set, whatever is in it
  assert.deepEqual(policySets({ ...v2host, policyVersion: "v1", trustMethod: "ek-key" }, both).map((s) => s.policyVersion), ["v1"]);
  assert.deepEqual(policySets({ ...v2host, policyVersion: "v1" }, both).map((s) => s.policyVersion), ["v1"]);
  // a set without a baseline is no set
  assert.deepEqual(policySets(v2host, [pol("b2", "baseline", "v2"), pol("sb1", "secureboot", "v1")]).map((s) => s.policyVersion), ["v2"]);
  assert.throws(
    () => policySets({ ...v2host, policyVersion: "v1", trustMethod: "ek-key" }, [pol("b2", "baseline", "v2")]),
    (e: TpmTrustError) => e.code === "ERR_POLICY_VERSION" && /baselines of policy version v2, but its EK holds for v1/.test(e.message),
  );
  // a v2 host whose EK is not trusted by certificate holds for no version
  assert.throws(() => policySets({ ...v2host, trustMethod: "ek-key" }, both), (e: TpmTrustError) => e.code === "ERR_POLICY_VERSION" && /v2 requires ek-cert/.test(e.message));
  assert.throws(() => policySets(v2host, [pol("sb1", "secureboot", "v2")]), (e: TpmTrustError) => e.code === "ERR_NO_BASELINE" && e.message.startsWith("no baseline for class c"));
});
