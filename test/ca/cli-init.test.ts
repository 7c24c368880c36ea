/**
 * `tpmtrust ca init` as operators run it (separate processes on a SQLite file): key files of mode
 * 0600, the attestation policies or anyPolicy, a second init refused, and CA keys sealed by a key
 * server. Templates, certificates and the CRL: test/ca/cli-certs.test.ts.
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { enroll } from "../../src/ca/enroll.js";
import { putTemplate } from "../../src/ca/templates.js";
import { addKeyServer } from "../../src/keys/providers.js";
import { openStore } from "../../src/store/index.js";
import { cli } from "../helpers/cli.js";
import { setup, type CaCliSetting } from "../helpers/ca-cli.js";

let s: CaCliSetting;
let dir: string;
const ca = (...args: string[]) => s.ca(...args);

before(async () => {
  s = await setup();
  ({ dir } = s);
});
after(() => s?.close());

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
