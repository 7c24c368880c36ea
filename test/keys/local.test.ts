/**
 * The built-in local key store: the master key file is created 0600 on first use and refused when
 * group or others may read it; the environment variable works; primary keys are stored only
 * wrapped; GCM seals bind the AAD; a wrong master key is reported as such.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addKeyServer, KEY_SERVER_KINDS, keyDirOf, readMasterKey } from "../../src/keys/index.js";
import { openStore } from "../../src/store/index.js";
import { TpmTrustError } from "../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-localkeys-"));
// master key files must be in the key directory
process.env.TPMTRUST_KEY_DIR = dir;
after(() => rmSync(dir, { recursive: true, force: true }));

const LOCAL = KEY_SERVER_KINDS.local;
const isCode = (code: string) => (e: unknown) => e instanceof TpmTrustError && e.code === code;
const ref = (keyRef: string, version = 1) => ({ keyId: "disk-keys", version, ref: keyRef });

test("the master key file is created on first use with mode 0600 in a 0700 directory, then reused", async () => {
  const file = join(dir, "fresh", "master.key");
  const cfg = LOCAL.configure({ masterKeyFile: file });
  assert.deepEqual(cfg, { masterKeyFile: file });
  const k1 = readMasterKey({ masterKeyFile: file });
  assert.equal(k1.length, 32);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, "fresh")).mode & 0o777, 0o700);
  assert.deepEqual(readMasterKey({ masterKeyFile: file }), k1, "the same key on the next read");
  assert.equal(Buffer.from(readFileSync(file, "utf8").trim(), "base64").length, 32);
});

test("a master key file that group or others may read is refused; so is one that is not 32 bytes of base64", async () => {
  const file = join(dir, "loose.key");
  writeFileSync(file, randomBytes(32).toString("base64") + "\n", { mode: 0o644 });
  chmodSync(file, 0o644);
  assert.throws(() => readMasterKey({ masterKeyFile: file }), (e: unknown) => isCode("ERR_IO")(e) && /mode 0644/.test((e as Error).message));
  const server = LOCAL.open({ masterKeyFile: file });
  await assert.rejects(server.check(), isCode("ERR_IO"));
  chmodSync(file, 0o640);
  assert.throws(() => readMasterKey({ masterKeyFile: file }), isCode("ERR_IO"));
  const short = join(dir, "short.key");
  writeFileSync(short, randomBytes(16).toString("base64"), { mode: 0o600 });
  assert.throws(() => readMasterKey({ masterKeyFile: short }), isCode("ERR_IO"));
});

test("the master key from an environment variable; a missing or malformed variable is an error", () => {
  const key = randomBytes(32);
  process.env.TPMTRUST_TEST_MK = key.toString("base64");
  try {
    assert.deepEqual(readMasterKey({ masterKeyEnv: "TPMTRUST_TEST_MK" }), key);
    process.env.TPMTRUST_TEST_MK = "not base64!";
    assert.throws(() => readMasterKey({ masterKeyEnv: "TPMTRUST_TEST_MK" }), isCode("ERR_IO"));
  } finally {
    delete process.env.TPMTRUST_TEST_MK;
  }
  assert.throws(() => readMasterKey({ masterKeyEnv: "TPMTRUST_TEST_MK" }), isCode("ERR_IO"));
  assert.throws(() => LOCAL.configure({ masterKeyEnv: "X", masterKeyFile: "/y" }), isCode("ERR_VALIDATION"));
  assert.throws(() => LOCAL.configure({ pin: "1234" }), isCode("ERR_VALIDATION"));
  assert.throws(() => LOCAL.configure({ masterKeyEnv: "1-not-a-name" }), isCode("ERR_VALIDATION"));
});

test("keys are random per version, stored only wrapped, and GCM binds the AAD", async () => {
  const masterKeyFile = join(dir, "m1.key");
  const server = LOCAL.open({ masterKeyFile });
  const a = await server.createKey("disk-keys");
  const b = await server.createKey("disk-keys");
  assert.notEqual(a, b);
  assert.match(a, /^local1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+$/);
  const aad = Buffer.from("provider=disk v1");
  const pt = Buffer.from("a volume key");
  const sealed = await server.encrypt(ref(a), pt, aad);
  assert.equal(sealed.length, 12 + pt.length + 16);
  assert.deepEqual(await server.decrypt(ref(a), sealed, aad), pt);
  await assert.rejects(server.decrypt(ref(a), sealed, Buffer.from("provider=disk v2")), isCode("ERR_DECRYPT_FAILED"));
  await assert.rejects(server.decrypt(ref(b), sealed, aad), isCode("ERR_DECRYPT_FAILED"), "another version's key");
  const flipped = Buffer.from(sealed);
  flipped[14] ^= 1;
  await assert.rejects(server.decrypt(ref(a), flipped, aad), isCode("ERR_DECRYPT_FAILED"));
  await assert.rejects(server.decrypt(ref(a), sealed.subarray(0, 20), aad), isCode("ERR_DECRYPT_FAILED"));

  // the reference is the key wrapped by the master key: unwrapping it by hand gives a key that opens the seal
  const master = readMasterKey({ masterKeyFile });
  const [, id, wrapped] = a.split(".");
  const w = Buffer.from(wrapped, "base64url");
  const { createDecipheriv } = await import("node:crypto");
  const d = createDecipheriv("aes-256-gcm", master, w.subarray(0, 12)).setAAD(Buffer.from(`tpmtrust/local-key/v1\0disk-keys\0${id}`));
  d.setAuthTag(w.subarray(w.length - 16));
  const primary = Buffer.concat([d.update(w.subarray(12, w.length - 16)), d.final()]);
  assert.equal(primary.length, 32);
  assert.ok(!a.includes(primary.toString("base64url")) && !a.includes(primary.toString("hex")), "never in clear");
  const o = createDecipheriv("aes-256-gcm", primary, sealed.subarray(0, 12)).setAAD(aad);
  o.setAuthTag(sealed.subarray(sealed.length - 16));
  assert.deepEqual(Buffer.concat([o.update(sealed.subarray(12, sealed.length - 16)), o.final()]), pt);

  // a reference bound to another key id does not unwrap
  await assert.rejects(server.encrypt({ keyId: "other", version: 1, ref: a }, pt, aad), (e: unknown) => isCode("ERR_IO")(e) && /wrong master key/.test((e as Error).message));
  await server.close();
});

test("another master key cannot unwrap the stored keys", async () => {
  const one = LOCAL.open({ masterKeyFile: join(dir, "one.key") });
  const keyRef = await one.createKey("k");
  const two = LOCAL.open({ masterKeyFile: join(dir, "two.key") });
  await assert.rejects(two.encrypt({ keyId: "k", version: 1, ref: keyRef }, Buffer.from("x"), Buffer.alloc(0)), (e: unknown) => isCode("ERR_IO")(e) && /wrong master key/.test((e as Error).message));
  await assert.rejects(two.encrypt({ keyId: "k", version: 1, ref: "id:00" }, Buffer.from("x"), Buffer.alloc(0)), isCode("ERR_IO"));
});

test("master key files are confined to the key directory: a path outside it, or a link leading out, is refused the same way whether it exists or not", () => {
  const refused = (e: unknown) => isCode("ERR_VALIDATION")(e) && (e as Error).message === `masterKeyFile must name a file inside the key directory ${dir} ($TPMTRUST_KEY_DIR)`;
  for (const p of ["/etc/passwd", "/no/such/file", "../outside.key", dir]) {
    assert.throws(() => LOCAL.configure({ masterKeyFile: p }), refused, p);
    assert.throws(() => readMasterKey({ masterKeyFile: p }), refused, p);
  }
  assert.deepEqual(LOCAL.configure({ masterKeyFile: "sub/m.key" }), { masterKeyFile: join(dir, "sub", "m.key") });
  const outside = mkdtempSync(join(tmpdir(), "tpmtrust-outside-"));
  try {
    writeFileSync(join(outside, "m.key"), randomBytes(32).toString("base64"), { mode: 0o600 });
    symlinkSync(join(outside, "m.key"), join(dir, "link.key"));
    assert.throws(() => readMasterKey({ masterKeyFile: join(dir, "link.key") }), refused);
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test("the key directory: $TPMTRUST_KEY_DIR, else the SQLite database's folder (so service and CLI on one database agree); PostgreSQL needs it set (ERR_USAGE)", async () => {
  const saved = process.env.TPMTRUST_KEY_DIR;
  delete process.env.TPMTRUST_KEY_DIR;
  try {
    const dbDir = join(dir, "state");
    const store = await openStore(join(dbDir, "t.db"));
    try {
      const r = await addKeyServer(store, { name: "local", kind: "local" }, { actor: "test", now: Date.now() });
      assert.deepEqual(r.config, { masterKeyFile: join(dbDir, "master.key") });
      assert.equal(statSync(join(dbDir, "master.key")).mode & 0o777, 0o600);
    } finally {
      await store.close();
    }
    const needsIt = (e: unknown) => isCode("ERR_USAGE")(e) && /^set TPMTRUST_KEY_DIR to the folder for key files/.test((e as Error).message);
    assert.throws(() => keyDirOf("postgres://tpmtrust@127.0.0.1/tpmtrust"), needsIt);
    assert.throws(() => keyDirOf(":memory:"), needsIt);
    assert.throws(() => LOCAL.configure({ masterKeyFile: "master.key" }), needsIt);
  } finally {
    process.env.TPMTRUST_KEY_DIR = saved;
  }
  assert.equal(keyDirOf("postgres://tpmtrust@127.0.0.1/tpmtrust"), dir);
});
