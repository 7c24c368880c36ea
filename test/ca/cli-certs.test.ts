/**
 * `tpmtrust ca …` as operators run it (separate processes on a SQLite file, the CA initialised by
 * `ca init`): templates from JSON files and flags, certificate listing, revocation and the CRL.
 * `ca init` itself: test/ca/cli-init.test.ts.
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { enroll } from "../../src/ca/enroll.js";
import { openStore } from "../../src/store/index.js";
import { setup, type CaCliSetting } from "../helpers/ca-cli.js";

let s: CaCliSetting;
let dir: string;
let db: string;
const ca = (...args: string[]) => s.ca(...args);

before(async () => {
  s = await setup({ init: true });
  ({ dir, db } = s);
});
after(() => s?.close());

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
