/**
 * `tpmtrust confirm` (exit 0 trusted, 1 not trusted, 2 unusable input), `tpmtrust trust …` and
 * `tpmtrust hosts …` as operators run them: real Infineon EK certificates with the keylime root
 * store, and a swtpm whose EK certificates come from a local CA, identified by `tpmtrust agent identify`.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeTpm2bPublic } from "../../src/tpm/structures.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";

const EK = "test/fixtures/ek-certs";
const STORE = "test/fixtures/manufacturer-roots/keylime-tpm_cert_store";
const IFX035 = "test/fixtures/manufacturer-roots/infineon-intermediates";
const AT = "2025-06-01T00:00:00Z";

const tmp = mkdtempSync(join(tmpdir(), "tpmtrust-cli-trust-"));
const f = (n: string) => join(tmp, n);
let tpm: Swtpm;

before(async () => {
  tpm = await startSwtpm({ ekCerts: true });
});
after(async () => {
  await tpm?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test("confirm with the Infineon EK certificates: the missing intermediate, --intermediates, --at, the allow-list, unusable input", async () => {
  const db = f("ifx.db");
  const imp = await cli(["trust", "import", STORE, "--db", db]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /^45 added, 0 already present, 0 skipped$/m); // 51 files, 6 of them duplicates

  const [noInt, withInt, ecc, late] = await Promise.all([
    cli(["confirm", "--ek-cert", `${EK}/infineon_rsa_ek.der`, "--at", AT, "--db", db]),
    cli(["confirm", "--ek-cert", `${EK}/infineon_rsa_ek.der`, "--intermediates", `${IFX035}/IFX_RSA_035.pem`, "--at", AT, "--db", db]),
    cli(["confirm", "--ek-cert", `${EK}/infineon_ecc_ek.der`, "--intermediates", `${IFX035}/IFX_ECC_035.pem`, `${IFX035}/IFX_RSA_035.pem`, "--at", AT, "--db", db, "--json"]),
    cli(["confirm", "--ek-cert", `${EK}/infineon_rsa_ek.der`, "--intermediates", `${IFX035}/IFX_RSA_035.pem`, "--at", "2060-01-01T00:00:00Z", "--db", db]),
  ]);
  assert.equal(noInt.code, 1, noInt.stderr);
  assert.match(noInt.stdout, /^trusted: no$/m);
  assert.match(noInt.stdout, /^ek-cert: failed ERR_CHAIN_UNTRUSTED: .*RSA Manufacturing CA 035" is neither a trusted root nor a known intermediate$/m);
  assert.equal(withInt.code, 0, withInt.stderr);
  assert.match(withInt.stdout, /^trusted: yes, by ek-cert$/m);
  assert.match(withInt.stdout, /^ek-cert: passed: .* chains to "C=DE, O=Infineon Technologies AG, OU=OPTIGA\(TM\) Devices, CN=Infineon OPTIGA\(TM\) RSA Root CA"$/m);
  assert.equal(ecc.code, 0, ecc.stderr);
  const e = ecc.json();
  assert.deepEqual([e.trusted, e.passed, e.certificates[0].path.length, e.certificates[0].tcg.tpmModel, e.at], [true, ["ek-cert"], 3, "SLB 9670 TPM2.0", "2025-06-01T00:00:00.000Z"]);
  assert.equal(late.code, 1);
  assert.match(late.stdout, /^ek-cert: failed ERR_CERT_EXPIRED: /m);

  // ek-key: by hash, by public key; database entry, then a folder entry
  const hash = ekHash(decodeTpm2bPublic(readFileSync(`${EK}/infineon_rsa_ek.expected_tpm2b_public.bin`)));
  assert.equal((await cli(["confirm", "--ek-hash", hash, "--db", db])).code, 1);
  const add = await cli(["trust", "allowlist", "add", hash.toUpperCase(), "--label", "lab TPM", "--db", db]);
  assert.equal(add.stdout, `${hash}\tadded\n`);
  const [byHash, byPub] = await Promise.all([
    cli(["confirm", "--ek-hash", hash.toUpperCase(), "--db", db]),
    cli(["confirm", "--ek-public", `${EK}/infineon_rsa_ek.expected_tpm2b_public.bin`, "--db", db, "--json"]),
  ]);
  assert.equal(byHash.code, 0, byHash.stderr);
  assert.match(byHash.stdout, /^trusted: yes, by ek-key$/m);
  assert.equal(byPub.code, 0);
  assert.deepEqual([byPub.json().passed, byPub.json().allowlistSource], [["ek-key"], "db"]);
  assert.equal((await cli(["trust", "allowlist", "remove", hash, "--db", db])).code, 0);
  const dir = f("ekpub");
  mkdirSync(dir);
  writeFileSync(join(dir, hash), "");
  assert.equal((await cli(["trust", "allowlist-dir", "add", dir, "--db", db])).code, 0);
  const [listed, viaDir] = await Promise.all([cli(["trust", "allowlist", "list", "--db", db, "--json"]), cli(["confirm", "--ek-hash", hash, "--db", db, "--json"])]);
  assert.deepEqual(listed.json().entries, [{ ekHash: hash, label: null, addedAt: null, source: dir }]);
  assert.deepEqual([viaDir.code, viaDir.json().allowlistSource], [0, dir]);
  unlinkSync(join(dir, hash));
  assert.equal((await cli(["confirm", "--ek-hash", hash, "--db", db])).code, 1);

  writeFileSync(f("garbled.der"), readFileSync(`${EK}/infineon_rsa_ek.der`).subarray(0, 200));
  const [garbled, none, both] = await Promise.all([
    cli(["confirm", "--ek-cert", f("garbled.der"), "--db", db]),
    cli(["confirm", "--db", db]),
    cli(["trust", "import", STORE, "--root", "--intermediate", "--db", db]),
  ]);
  assert.deepEqual([garbled.code, none.code, both.code], [2, 2, 2]);
  assert.match(garbled.stderr, /^error ERR_PARSE_CERT: /);
  assert.match(none.stderr, /^error ERR_USAGE: give --ek-hash HEX, --ek-cert FILE or --ek-public FILE/);
});

test("trust import of a TrustedTpm.cab-style tree reports skipped files; cas list/remove", async () => {
  const db = f("cab.db");
  const cab = f("cab");
  for (const d of ["IFX/RootCA", "IFX/IntermediateCA"]) mkdirSync(join(cab, d), { recursive: true });
  copyFileSync(`${STORE}/INF_RSA_010RT.pem`, join(cab, "IFX/RootCA/Infineon-RSA-Root.crt"));
  copyFileSync(`${IFX035}/IFX_RSA_035.pem`, join(cab, "IFX/IntermediateCA/OptigaRsaMfrCA035.cer"));
  writeFileSync(join(cab, "setup.cmd"), "certutil -addstore\r\n");
  const imp = await cli(["trust", "import", cab, "--db", db, "--json"]);
  assert.equal(imp.code, 0, imp.stderr);
  const r = imp.json();
  assert.deepEqual(
    r.added.map((a: { kind: string }) => a.kind),
    ["root", "intermediate"],
  );
  assert.deepEqual(
    r.skipped.map((s: { path: string }) => s.path),
    [join(cab, "setup.cmd")],
  );
  const args = ["confirm", "--ek-cert", `${EK}/infineon_rsa_ek.der`, "--at", AT, "--db", db];
  assert.equal((await cli(args)).code, 0);
  const rm = await cli(["trust", "cas", "remove", r.added[0].id, "--db", db]);
  assert.equal(rm.stdout, `removed root ${r.added[0].id}\n`);
  const [after, list] = await Promise.all([cli(args), cli(["trust", "cas", "list", "--db", db, "--json"])]);
  assert.equal(after.code, 1);
  assert.deepEqual(
    list.json().map((c: { kind: string }) => c.kind),
    ["intermediate"],
  );
});

test("swtpm: agent identify > host.json; confirm its EK certificates; hosts add/list/show/remove with exit codes", async () => {
  const db = f("hosts.db");
  const id = await cli(["agent", "identify", "--tpm", `swtpm:host=127.0.0.1,port=${tpm.port}`]);
  assert.equal(id.code, 0, id.stderr);
  writeFileSync(f("host.json"), id.stdout);
  const identity = id.json();
  writeFileSync(f("ek-rsa.der"), Buffer.from(identity.ekCertificates[0], "base64"));
  writeFileSync(f("root.pem"), tpm.ca!.rootPem);
  writeFileSync(f("issuer.pem"), tpm.ca!.intermediatePem);

  const untrusted = await cli(["hosts", "add", f("host.json"), "--name", "web-01", "--class", "swtpm", "--db", db]);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /^error ERR_EK_NOT_TRUSTED: /);
  assert.equal((await cli(["trust", "import", f("root.pem"), f("issuer.pem"), "--db", db])).code, 0);
  const [conf, added] = await Promise.all([
    cli(["confirm", "--ek-cert", f("ek-rsa.der"), "--db", db]),
    cli(["hosts", "add", f("host.json"), "--name", "web-01", "--class", "swtpm", "--db", db, "--json"]),
  ]);
  assert.equal(conf.code, 0, conf.stdout);
  assert.match(conf.stdout, /^  path: .* <- CN=swtpm-localca <- CN=swtpm-localca-rootca$/m);
  assert.equal(added.code, 0, added.stderr);
  assert.deepEqual([added.json().trustMethod, added.json().policyVersion, added.json().eks.length], ["ek-cert", "v2", 2]);

  writeFileSync(f("junk.json"), JSON.stringify({ ...identity, extra: true }));
  const [list, show, junk, dup] = await Promise.all([
    cli(["hosts", "list", "--db", db, "--json"]),
    cli(["hosts", "show", "web-01", "--db", db]),
    cli(["hosts", "add", f("junk.json"), "--name", "web-02", "--class", "swtpm", "--db", db]),
    cli(["hosts", "add", f("host.json"), "--name", "web-02", "--class", "swtpm", "--policy-version", "v1", "--db", db]),
  ]);
  assert.deepEqual(
    list.json().map((h: { name: string }) => h.name),
    ["web-01"],
  );
  assert.match(show.stdout, /^EK trust method: ek-cert$/m);
  assert.equal(junk.code, 2);
  assert.match(junk.stderr, /^error ERR_VALIDATION: identity: unknown field "extra"/);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /^error ERR_CONFLICT: EK [0-9a-f]+ is already registered to a host/);
  assert.equal((await cli(["hosts", "remove", "web-01", "--db", db])).code, 0);
  const gone = await cli(["hosts", "show", "web-01", "--db", db]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /^error ERR_NOT_FOUND: /);
});
