/**
 * PKCS#11 key servers against SoftHSM2: AES-256 keys generated inside the token (sensitive, not
 * extractable), CKM_AES_GCM encryption and decryption inside the token, AAD binding, the token
 * chosen by label or slot, the PIN from a variable or a 0600 file in the key directory (no other
 * path, not even through a link), and the errors of a wrong PIN, an unknown token and a reference
 * the token does not hold; the module only from a module folder or the key directory.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as Pkcs11Types from "pkcs11js";
import { KEY_SERVER_KINDS, type KeyServer } from "../../src/keys/index.js";
import { TpmTrustError } from "../../src/errors.js";
import { checkSealing } from "../helpers/key-server.js";
import { startSoftHsm, type SoftHsm } from "../helpers/softhsm.js";

const PKCS11 = KEY_SERVER_KINDS.pkcs11;
const isCode = (code: string) => (e: unknown) => e instanceof TpmTrustError && e.code === code;

let hsm: SoftHsm;
let token: { label: string; pin: string };
let other: { label: string; pin: string };
let server: KeyServer;
/** the key directory the PIN files must be in */
let keys: { keyDir(): string };

before(() => {
  hsm = startSoftHsm();
  token = hsm.initToken("tpmtrust-keys");
  other = hsm.initToken("second", "9999");
  const dir = join(hsm.dir, "keys");
  mkdirSync(dir, { mode: 0o700 });
  keys = { keyDir: () => dir };
  process.env.TPMTRUST_TEST_PIN = token.pin;
  server = PKCS11.open(PKCS11.configure({ module: hsm.module, tokenLabel: token.label, pinEnv: "TPMTRUST_TEST_PIN" }));
});
after(async () => {
  await server?.close();
  hsm?.cleanup();
});

const m0 = () => createRequire(import.meta.url)("pkcs11js") as typeof Pkcs11Types;

/** A logged-in session of the test's own on the token, to look at or make objects behind the key server's back. */
function ownSession(flags: number) {
  const m = m0();
  const lib = new m.PKCS11();
  lib.load(hsm.module);
  try {
    lib.C_Initialize();
  } catch (e) {
    assert.equal((e as { code: number }).code, m.CKR_CRYPTOKI_ALREADY_INITIALIZED);
  }
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.replace(/[\0 ]+$/, "") === token.label)!;
  const session = lib.C_OpenSession(slot, flags);
  try {
    lib.C_Login(session, m.CKU_USER, token.pin);
  } catch (e) {
    assert.equal((e as { code: number }).code, m.CKR_USER_ALREADY_LOGGED_IN);
  }
  return { m, lib, session };
}

test("settings: module path, token by label or slot, PIN place; never a PIN in the settings", () => {
  const pinFile = join(keys.keyDir(), "pin");
  const module = "/usr/lib/softhsm/x.so";
  assert.deepEqual(PKCS11.configure({ module, slot: 0, pinFile: "pin" }, keys), { module, slot: 0, pinFile });
  assert.deepEqual(PKCS11.configure({ module, slot: 0, pinFile }, keys), { module, slot: 0, pinFile });
  for (const bad of [
    { module: "x.so", tokenLabel: "t", pinEnv: "P" },
    { module, pinEnv: "P" },
    { module, tokenLabel: "t", slot: 0, pinEnv: "P" },
    { module, tokenLabel: "t" },
    { module, tokenLabel: "t", pin: "1234" },
    { module, tokenLabel: "t", pinFile: "" },
    { module, tokenLabel: "t", pinFile: "../pin" },
  ]) {
    assert.throws(() => PKCS11.configure(bad, keys), isCode("ERR_VALIDATION"), JSON.stringify(bad));
  }
});

test("the module: in a module folder ($TPMTRUST_PKCS11_MODULE_DIRS, else where distributions install them) or the key directory; anything else, a path climbing out or a link leading out, refused alike", async () => {
  const settings = (module: string) => ({ module, tokenLabel: token.label, pinEnv: "TPMTRUST_TEST_PIN" });
  for (const module of ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-trust.so", "/usr/lib64/pkcs11/libsofthsm2.so", join(keys.keyDir(), "vendor.so")]) {
    assert.equal(PKCS11.configure(settings(module), keys).module, module);
  }
  const outside = mkdtempSync(join(tmpdir(), "tpmtrust-pkcs11-outside-"));
  try {
    const library = join(outside, "libvendor.so");
    copyFileSync(hsm.module, library);
    const refusal = (module: string): string => {
      try {
        PKCS11.configure(settings(module), keys);
      } catch (e) {
        assert.ok(isCode("ERR_VALIDATION")(e), `${module}: ${e}`);
        return (e as Error).message;
      }
      assert.fail(`${module} was accepted`);
    };
    const messages = new Set([library, join(outside, "missing.so"), "/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/softhsm/../../../tmp/x.so"].map(refusal));
    assert.equal(messages.size, 1, [...messages].join("\n"));
    assert.ok(![...messages][0].includes(outside));
    // a link in the key directory to a library outside: refused when it would be loaded
    symlinkSync(library, join(keys.keyDir(), "linked.so"));
    const linked = PKCS11.open(settings(join(keys.keyDir(), "linked.so")), keys);
    await assert.rejects(linked.check(), (e: unknown) => isCode("ERR_VALIDATION")(e) && (e as Error).message === [...messages][0]);
    await linked.close();
    // the operator names another module folder: only its folders (and the key directory) then
    process.env.TPMTRUST_PKCS11_MODULE_DIRS = `${outside}:/opt/hsm/lib`;
    try {
      assert.equal(PKCS11.configure(settings(library), keys).module, library);
      assert.throws(() => PKCS11.configure(settings("/usr/lib/softhsm/libsofthsm2.so"), keys), isCode("ERR_VALIDATION"));
      process.env.TPMTRUST_PKCS11_MODULE_DIRS = "relative/lib";
      assert.throws(() => PKCS11.configure(settings(library), keys), isCode("ERR_USAGE"));
    } finally {
      delete process.env.TPMTRUST_PKCS11_MODULE_DIRS;
    }
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test("AES-256 keys are generated inside the token: sensitive, not extractable, found by CKA_ID", async () => {
  const ref = await server.createKey("volumes");
  assert.match(ref, /^id:[0-9a-f]{32}$/);
  // look at the object with a session of our own
  const { m, lib, session } = ownSession(m0().CKF_SERIAL_SESSION);
  lib.C_FindObjectsInit(session, [{ type: m.CKA_ID, value: Buffer.from(ref.slice(3), "hex") }]);
  const [obj] = lib.C_FindObjects(session, 2);
  lib.C_FindObjectsFinal(session);
  assert.ok(obj, "the key is a token object");
  const attrs = lib.C_GetAttributeValue(session, obj, [
    { type: m.CKA_KEY_TYPE },
    { type: m.CKA_VALUE_LEN },
    { type: m.CKA_SENSITIVE },
    { type: m.CKA_EXTRACTABLE },
    { type: m.CKA_LABEL },
  ]);
  const ulong = (b: Buffer) => (b.length === 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0));
  assert.equal(ulong(attrs[0].value as Buffer), m.CKK_AES);
  assert.equal(ulong(attrs[1].value as Buffer), 32);
  assert.equal((attrs[2].value as Buffer)[0], 1, "CKA_SENSITIVE");
  assert.equal((attrs[3].value as Buffer)[0], 0, "CKA_EXTRACTABLE");
  assert.equal((attrs[4].value as Buffer).toString(), "volumes");
  assert.throws(() => lib.C_GetAttributeValue(session, obj, [{ type: m.CKA_VALUE }]), "the key value cannot be read out");
  lib.C_CloseSession(session);
});

test("CKM_AES_GCM inside the token: round trip, AAD bound, tampering detected, versions distinct", async () => {
  const { pt, aad } = await checkSealing(server, "volumes");
  await assert.rejects(server.encrypt({ keyId: "volumes", version: 3, ref: `id:${"ab".repeat(16)}` }, pt, aad), (e: unknown) => isCode("ERR_IO")(e) && /no key with CKA_ID/.test((e as Error).message));
});

test("the token by slot index and the PIN from a 0600 file; a group-readable PIN file, a wrong PIN and an unknown label are refused", async () => {
  const pinFile = join(keys.keyDir(), "other-pin");
  writeFileSync(pinFile, `${other.pin}\n`, { mode: 0o600 });
  const slots = [token.label, other.label];
  const bySlot = PKCS11.open({ module: hsm.module, slot: slots.indexOf(other.label), pinFile }, keys);
  try {
    await bySlot.check();
    const k = { keyId: "x", version: 1, ref: await bySlot.createKey("x") };
    assert.deepEqual(await bySlot.decrypt(k, await bySlot.encrypt(k, Buffer.from("hi"), Buffer.alloc(0)), Buffer.alloc(0)), Buffer.from("hi"));
  } finally {
    await bySlot.close();
  }
  chmodSync(pinFile, 0o644);
  await assert.rejects(PKCS11.open({ module: hsm.module, tokenLabel: other.label, pinFile }, keys).check(), isCode("ERR_IO"));

  process.env.TPMTRUST_WRONG_PIN = "0000";
  const wrong = PKCS11.open({ module: hsm.module, tokenLabel: other.label, pinEnv: "TPMTRUST_WRONG_PIN" });
  await assert.rejects(wrong.check(), (e: unknown) => isCode("ERR_IO")(e) && /CKR_PIN_INCORRECT/.test((e as Error).message));
  await assert.rejects(PKCS11.open({ module: hsm.module, tokenLabel: "nope", pinEnv: "TPMTRUST_TEST_PIN" }).check(), (e: unknown) => isCode("ERR_IO")(e) && /no PKCS#11 token labelled "nope"/.test((e as Error).message));
  await assert.rejects(PKCS11.open({ module: "/usr/lib/softhsm/no-such-lib.so", tokenLabel: "t", pinEnv: "TPMTRUST_TEST_PIN" }).check(), isCode("ERR_IO"));
});

test("a PIN file outside the key directory is refused before the disk is touched, with one answer whether the path exists or not; a link out of it is refused too", async () => {
  const message = `pinFile must name a file inside the key directory ${keys.keyDir()} ($TPMTRUST_KEY_DIR)`;
  const refused = (e: unknown) => isCode("ERR_VALIDATION")(e) && (e as Error).message === message && (e as TpmTrustError).details === undefined;
  for (const pinFile of ["/etc/passwd", "/nonexistent/pin", join(hsm.dir, "pin"), "../../etc/shadow"]) {
    assert.throws(() => PKCS11.configure({ module: hsm.module, tokenLabel: other.label, pinFile }, keys), refused, pinFile);
    assert.throws(() => PKCS11.open({ module: hsm.module, tokenLabel: other.label, pinFile }, keys), refused, pinFile);
  }
  // a link inside the key directory to a file outside it (here: a valid PIN file) is not followed
  const outside = join(hsm.dir, "outside-pin");
  writeFileSync(outside, `${other.pin}\n`, { mode: 0o600 });
  symlinkSync(outside, join(keys.keyDir(), "link-pin"));
  await assert.rejects(PKCS11.open({ module: hsm.module, tokenLabel: other.label, pinFile: "link-pin" }, keys).check(), refused);
});

test("adoption: a key the token already holds under --key-id (label or CKA_ID) is used, not duplicated; unsuitable keys are refused", async () => {
  const ref = await server.createKey("adopt-me");
  assert.equal(await server.adoptKey!("adopt-me"), ref, "by label");
  assert.equal(await server.adoptKey!(ref.slice(3)), ref, "by CKA_ID");
  assert.equal(await server.adoptKey!("nobody-made-this"), undefined);
  await server.createKey("twins");
  await server.createKey("twins");
  await assert.rejects(server.adoptKey!("twins"), isCode("ERR_CONFLICT"));
  // keys made by someone else, with our own session
  const { m, lib, session } = ownSession(m0().CKF_SERIAL_SESSION | m0().CKF_RW_SESSION);
  const make = (label: string, len: number, extractable: boolean) =>
    lib.C_GenerateKey(session, { mechanism: m.CKM_AES_KEY_GEN }, [
      { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
      { type: m.CKA_KEY_TYPE, value: m.CKK_AES },
      { type: m.CKA_VALUE_LEN, value: len },
      { type: m.CKA_TOKEN, value: true },
      { type: m.CKA_PRIVATE, value: true },
      { type: m.CKA_SENSITIVE, value: true },
      { type: m.CKA_EXTRACTABLE, value: extractable },
      { type: m.CKA_ENCRYPT, value: true },
      { type: m.CKA_DECRYPT, value: true },
      { type: m.CKA_LABEL, value: label },
      { type: m.CKA_ID, value: Buffer.from(label) },
    ]);
  make("exportable", 32, true);
  make("aes-128", 16, false);
  lib.C_CloseSession(session);
  await assert.rejects(server.adoptKey!("exportable"), (e: unknown) => isCode("ERR_KEY_UNSUITABLE")(e) && /extractable/.test((e as Error).message));
  await assert.rejects(server.adoptKey!("aes-128"), (e: unknown) => isCode("ERR_KEY_UNSUITABLE")(e) && /128 bits/.test((e as Error).message));
});
