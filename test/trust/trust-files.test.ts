import { test, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeTpm2bPublic } from "../../src/tpm/structures.js";
import { loadAllowlistDir, loadTrustAnchors } from "../../src/trust/trust-files.js";
import { ekHash, evaluateEkTrust, loadCertificate, roleFromPath } from "../../src/verify/ek/index.js";
import { TpmTrustError } from "../../src/errors.js";

const STORE = "test/fixtures/manufacturer-roots/keylime-tpm_cert_store";
const IFX035 = "test/fixtures/manufacturer-roots/infineon-intermediates";
const EK = "test/fixtures/ek-certs";
const AT = new Date("2025-06-01T00:00:00Z");

const tmp = mkdtempSync(join(tmpdir(), "tpmtrust-trustfiles-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("a TrustedTpm.cab-style vendor tree: folder names decide roles, other files are reported", () => {
  const cab = join(tmp, "cab");
  for (const d of ["IFX/RootCA", "IFX/IntermediateCA", "STM/RootCA", "Docs"]) mkdirSync(join(cab, d), { recursive: true });
  // DER with .cer, PEM with .crt: both are read by content
  writeFileSync(join(cab, "IFX/RootCA/Infineon-RSA-Root.cer"), loadCertificate(readFileSync(`${STORE}/INF_RSA_010RT.pem`)).der);
  copyFileSync(`${IFX035}/IFX_RSA_035.pem`, join(cab, "IFX/IntermediateCA/OptigaRsaMfrCA035.crt"));
  // cross-signed by GlobalSign, but the folder says root
  copyFileSync(`${STORE}/STM_RSA_RT.pem`, join(cab, "STM/RootCA/STM-Root.pem"));
  writeFileSync(join(cab, "setup.cmd"), "certutil -addstore ...\r\n");
  writeFileSync(join(cab, "Docs/broken.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");

  const loaded = loadTrustAnchors(cab);
  assert.deepEqual(
    loaded.files.map((f) => [f.path.slice(cab.length + 1), f.role]),
    [
      ["IFX/IntermediateCA/OptigaRsaMfrCA035.crt", "intermediate"],
      ["IFX/RootCA/Infineon-RSA-Root.cer", "root"],
      ["STM/RootCA/STM-Root.pem", "root"],
    ],
  );
  assert.deepEqual(
    loaded.skipped.map((s) => s.path.slice(cab.length + 1)),
    ["Docs/broken.pem", "setup.cmd"],
  );
  assert.match(loaded.skipped[0].reason, /^ERR_PARSE_CERT: /);

  const r = evaluateEkTrust({ ekCerts: [readFileSync(`${EK}/infineon_rsa_ek.der`)], roots: loaded.roots, intermediates: loaded.intermediates, allowlist: new Set(), at: AT });
  assert.equal(r.methods["ek-cert"].passed, true, r.methods["ek-cert"].reason);
});

test("a flat folder (the keylime store): self-signed = root; a role option overrides; a bundle file loads every certificate", () => {
  const flat = loadTrustAnchors(STORE);
  assert.equal(flat.roots.length, 11);
  assert.equal(flat.intermediates.length, 34);
  assert.equal(flat.skipped.length, 0);
  const allRoots = loadTrustAnchors(STORE, { role: "root" });
  assert.equal(allRoots.roots.length, 45);
  const bundle = join(tmp, "bundle.txt");
  writeFileSync(bundle, readdirSync(STORE).map((f) => readFileSync(join(STORE, f), "utf8")).join("\n"));
  const fromBundle = loadTrustAnchors([bundle, IFX035]);
  assert.equal(fromBundle.roots.length, 11);
  assert.equal(fromBundle.intermediates.length, 36);
});

test("missing paths are ERR_IO; an explicit unparseable file is ERR_PARSE_CERT", () => {
  assert.throws(() => loadTrustAnchors(join(tmp, "nope")), (e: TpmTrustError) => e.code === "ERR_IO");
  const junk = join(tmp, "junk.cer");
  writeFileSync(junk, "not a certificate");
  assert.throws(() => loadTrustAnchors(junk), (e: TpmTrustError) => e.code === "ERR_PARSE_CERT");
});

test("roleFromPath reads the innermost folder that names a role", () => {
  assert.equal(roleFromPath("IFX/RootCA/a.cer"), "root");
  assert.equal(roleFromPath("Intel/IntermediateCA/b.cer"), "intermediate");
  assert.equal(roleFromPath("roots/vendor/intermediates/c.pem"), "intermediate");
  assert.equal(roleFromPath("Rootstock/c.pem"), undefined);
  assert.equal(roleFromPath("RootCA.cer"), undefined);
});

test("AD CS allow-list directory: zero-byte files named by the EK hash, any case; the rest is reported", () => {
  const dir = join(tmp, "allow");
  mkdirSync(join(dir, "sub"), { recursive: true });
  const rsa = ekHash(decodeTpm2bPublic(readFileSync(`${EK}/infineon_rsa_ek.expected_tpm2b_public.bin`)));
  const ecc = ekHash(decodeTpm2bPublic(readFileSync(`${EK}/infineon_ecc_ek.expected_tpm2b_public.bin`)));
  writeFileSync(join(dir, rsa), "");
  writeFileSync(join(dir, ecc.toUpperCase()), "");
  writeFileSync(join(dir, `${"ab".repeat(32)}.txt`), "");
  writeFileSync(join(dir, "cd".repeat(32)), "not empty");
  writeFileSync(join(dir, "README"), "");
  const { hashes, ignored } = loadAllowlistDir(dir);
  assert.deepEqual([...hashes].sort(), [rsa, ecc].sort());
  assert.deepEqual(
    ignored.map((i) => [i.path.slice(dir.length + 1), i.reason]),
    [
      ["README", "name is not a 64-hex-digit EK hash"],
      [`${"ab".repeat(32)}.txt`, "name is not a 64-hex-digit EK hash"],
      ["cd".repeat(32), "not empty (9 bytes); allow-list files are zero-byte"],
      ["sub", "not a regular file"],
    ],
  );
  const r = evaluateEkTrust({ ekPublic: decodeTpm2bPublic(readFileSync(`${EK}/infineon_ecc_ek.expected_tpm2b_public.bin`)), allowlist: hashes, roots: [], at: AT });
  assert.equal(r.methods["ek-key"].passed, true);
  assert.throws(() => loadAllowlistDir(join(tmp, "missing")), (e: TpmTrustError) => e.code === "ERR_IO");
});
