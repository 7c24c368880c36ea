/**
 * `tpmtrust ca …` as operators run it (separate processes on a SQLite file): init with key files of
 * mode 0600, templates from JSON files and flags, certificate listing, revocation and the CRL.
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { enroll } from "../../src/ca/enroll.js";
import { putTemplate } from "../../src/ca/templates.js";
import { addKeyServer } from "../../src/keys/providers.js";
import { openStore } from "../../src/store/index.js";
import { cli } from "../helpers/cli.js";

let dir: string;
let db: string;
const ca = (...args: string[]) => cli(["ca", ...args, "--db", db]);

before(() => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-ca-cli-"));
  db = join(dir, "db.sqlite");
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("ca init: root and issuing CA, PKCS#8 keys with mode 0600, the attestation policies or anyPolicy; a second init is refused", async () => {
  const r = await ca("init", "--alg", "rsa-2048", "--key-dir", join(dir, "keys"), "--json");
  assert.equal(r.code, 0, r.stderr);
  const { root, issuing } = r.json();
  assert.equal(root.kind, "root");
  assert.deepEqual(issuing.policies, ["1.3.6.1.4.1.311.21.30", "1.3.6.1.4.1.311.21.31", "1.3.6.1.4.1.311.21.32"]);
  for (const a of [root, issuing]) {
    const path = a.keyRef.replace(/^file:/, "");
    assert.equal(statSync(path).mode & 0o777, 0o600, path);
    assert.match(readFileSync(path, "utf8"), /^-----BEGIN PRIVATE KEY-----/);
  }
  const again = await ca("init");
  assert.equal(again.code, 1);
  assert.match(again.stderr, /ERR_CONFLICT/);
  const other = await cli(["ca", "init", "--any-policy", "--db", join(dir, "other.sqlite"), "--key-dir", join(dir, "keys2"), "--json"]);
  assert.deepEqual(other.json().issuing.policies, ["2.5.29.32.0"]);
});

test("ca init --key-server: the CA keys sealed by a key server of the key provider area, no key files; the CA signs", async () => {
  const sealedDb = join(dir, "sealed.sqlite");
  const store = await openStore(sealedDb);
  try {
    await addKeyServer(store, { name: "vault", kind: "local", config: { masterKeyFile: join(dir, "master.key") } }, { actor: "test", now: Date.now() });
  } finally {
    await store.close();
  }
  const r = await cli(["ca", "init", "--key-server", "vault", "--key-dir", join(dir, "unused"), "--db", sealedDb, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const { root, issuing } = r.json();
  for (const a of [root, issuing]) assert.match(a.keyRef, /^keyserver:vault:tpmtrust-ca-(root|issuing)-[0-9a-f]{12}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
  assert.equal(existsSync(join(dir, "unused")), false);
  const s2 = await openStore(sealedDb);
  try {
    await putTemplate(s2, { name: "t" }, { actor: "test", now: Date.now() });
    const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=sealed.example", keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams });
    const out = await enroll(s2, { template: "t", csr: Buffer.from(csr.rawData) }, { actor: "test", requester: { kind: "admin", tokenId: "test" }, now: Date.now() });
    const chain = out.chain.map((d) => new x509.X509Certificate(new Uint8Array(d)));
    assert.ok(await new x509.X509Certificate(new Uint8Array(out.certificate)).verify({ publicKey: chain[0].publicKey, signatureOnly: true }));
  } finally {
    await s2.close();
  }
});

test("ca templates add (file and flags) | list | show | remove", async () => {
  const file = join(dir, "t.json");
  writeFileSync(file, JSON.stringify({ name: "from-file", validityDays: 30, keyAttestation: { mode: "required-if-capable", trustModels: ["ek-key", "ek-cert"] } }));
  assert.equal((await ca("templates", "add", file)).code, 0);
  const flags = await ca("templates", "add", "--name", "from-flags", "--attestation", "required", "--trust-models", "user-credentials", "--no-policies", "--eku", "clientAuth,serverAuth", "--json");
  assert.equal(flags.code, 0, flags.stderr);
  assert.deepEqual(flags.json().keyAttestation, { mode: "required", trustModels: ["user-credentials"], includeIssuancePolicies: false });
  const list = await ca("templates", "list");
  assert.equal(list.stdout, "from-file\trequired-if-capable\tek-key,ek-cert\t30d\trsa-2048,ecdsa-p256\nfrom-flags\trequired\tuser-credentials\t365d\trsa-2048,ecdsa-p256\n");
  assert.deepEqual((await ca("templates", "show", "from-flags")).json().extendedKeyUsage, ["clientAuth", "serverAuth"]);
  const bound = await ca("templates", "add", "--name", "bound", "--attestation", "required", "--subject-from", "request", "--host-classes", "gen10", "--host-tags", "pki", "--enrollers", "ops,pki-bot", "--no-admins", "--anonymous", "--json");
  assert.equal(bound.code, 0, bound.stderr);
  assert.equal(bound.json().subjectFrom, "request");
  assert.deepEqual(bound.json().requesters, { hosts: true, hostClasses: ["gen10"], hostTags: ["pki"], enrollers: ["ops", "pki-bot"], admins: false, anonymous: true });
  assert.deepEqual((await ca("templates", "add", "--name", "nohosts", "--no-hosts", "--json")).json().requesters.hosts, false);
  assert.equal((await ca("templates", "add", "--name", "x", "--subject-from", "csr")).code, 2);
  assert.equal((await ca("templates", "remove", "bound")).code, 0);
  assert.equal((await ca("templates", "remove", "nohosts")).code, 0);
  const bad = await ca("templates", "add", "--name", "x", "--trust-models", "tofu");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /ERR_VALIDATION.*keyAttestation.trustModels/);
  assert.equal((await ca("templates", "remove", "from-flags")).code, 0);
  const gone = await ca("templates", "remove", "from-flags");
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /ERR_NOT_FOUND/);
});

test("ca certs list | revoke and ca crl", async () => {
  const store = await openStore(db);
  let serial: string;
  try {
    const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=plain.example", keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams });
    serial = (await enroll(store, { template: "from-file", csr: Buffer.from(csr.rawData) }, { actor: "test", requester: { kind: "admin", tokenId: "test" }, now: Date.now() })).serial;
  } finally {
    await store.close();
  }
  const list = await ca("certs", "list", "--json");
  assert.deepEqual(list.json().map((c: { serial: string }) => c.serial), [serial]);
  assert.equal(list.json()[0].revokedAt, null);
  const rev = await ca("certs", "revoke", serial, "--reason", "superseded", "--json");
  assert.equal(rev.code, 0, rev.stderr);
  assert.equal(rev.json().revocationReason, "superseded");
  assert.match((await ca("certs", "list", "--revoked")).stdout, new RegExp(`^${serial}\\tCN=plain.example\\tfrom-file\\t-\\t.*\\trevoked:superseded\\t-\\n$`));
  assert.match((await ca("certs", "revoke", serial)).stderr, /ERR_CONFLICT/);
  const out = join(dir, "crl.der");
  assert.equal((await ca("crl", "--out", out)).code, 0);
  const crl = new x509.X509Crl(readFileSync(out));
  assert.equal(crl.entries[0].serialNumber, serial);
  assert.equal(crl.entries[0].reason, x509.X509CrlReason.superseded);
});
