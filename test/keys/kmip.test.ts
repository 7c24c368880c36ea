/**
 * KMIP key servers: the TTLV codec against the KMIP 1.4 specification's own encoding examples
 * (§9.1.2) and malformed messages; then a real KMS, Debian's PyKMIP server over mutual TLS:
 * AES-256 keys created and activated inside it, AES-256-GCM done by it, adoption of keys it already
 * holds (and refusal of unsuitable ones), Revoke + Destroy on retirement, a KMS that is down or
 * refuses our certificate; and key release end to end over HTTP with an attested swtpm host.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { TpmTrustError } from "../../src/errors.js";
import { KEY_SERVER_KINDS, closeKeyServers, type KeyServer } from "../../src/keys/index.js";
import { KmipClient } from "../../src/keys/kmip/client.js";
import { ALGORITHM_AES, OBJECT_TYPE_SYMMETRIC_KEY, OPERATION, TAG, USAGE_DECRYPT, USAGE_ENCRYPT } from "../../src/keys/kmip/constants.js";
import { bool, bytes, dateTime, decodeTtlv, encodeTtlv, enumeration, int, required, struct, text, type TtlvItem } from "../../src/keys/kmip/ttlv.js";
import { buildApp } from "../../src/server/app.js";
import { openStore, type Store } from "../../src/store/index.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { addHost, attestOnce, readLog, startTpmHost, type TpmHost } from "../helpers/attest-host.js";
import { checkSealing } from "../helpers/key-server.js";
import { startPyKmip, type PyKmip } from "../helpers/pykmip.js";

const KMIP = KEY_SERVER_KINDS.kmip;
const isCode = (code: string) => (e: unknown) => e instanceof TpmTrustError && e.code === code;
const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ""), "hex");

describe("TTLV (KMIP 1.4 §9.1)", () => {
  // the encoding examples of KMIP 1.4 §9.1.2, tag 420020
  const vectors: [string, TtlvItem, string][] = [
    ["Integer 8", int(0x420020, 8), "42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00"],
    ["Long Integer 123456789000000000", { tag: 0x420020, type: "long", value: 123456789000000000n }, "42 00 20 | 03 | 00 00 00 08 | 01 B6 9B 4B A5 74 92 00"],
    ["Big Integer 1234567890000000000000000000", { tag: 0x420020, type: "bigInteger", value: hex("00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00") }, "42 00 20 | 04 | 00 00 00 10 | 00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00"],
    ["Enumeration 255", enumeration(0x420020, 255), "42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 00 00 00 00"],
    ["Boolean True", bool(0x420020, true), "42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01"],
    ["Text String Hello World", text(0x420020, "Hello World"), "42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00"],
    ["Byte String 01 02 03", bytes(0x420020, hex("010203")), "42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00"],
    ["Date-Time 2008-03-14 11:56:40 GMT", dateTime(0x420020, 0x47da67f8n), "42 00 20 | 09 | 00 00 00 08 | 00 00 00 00 47 DA 67 F8"],
    ["Interval 10 days", { tag: 0x420020, type: "interval", value: 864000 }, "42 00 20 | 0A | 00 00 00 04 | 00 0D 2F 00 00 00 00 00"],
    [
      "Structure of Enumeration 254 and Integer 255",
      struct(0x420020, enumeration(0x420004, 254), int(0x420005, 255)),
      "42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00 | 42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00",
    ],
  ];
  for (const [name, item, bytesHex] of vectors) {
    test(`§9.1.2 example: ${name}`, () => {
      assert.deepEqual(encodeTtlv(item), hex(bytesHex));
      assert.deepEqual(decodeTtlv(hex(bytesHex)), item);
    });
  }

  test("malformed messages are typed errors with the offset, at every truncation", () => {
    const msg = encodeTtlv(struct(0x420078, struct(0x420077, text(0x420055, "name"), int(0x42000d, 1)), bytes(0x4200c2, Buffer.alloc(13, 7))));
    for (let n = 0; n < msg.length; n++) assert.throws(() => decodeTtlv(msg.subarray(0, n)), isCode("ERR_PARSE_TRUNCATED"), `cut at ${n}`);
    assert.throws(() => decodeTtlv(Buffer.concat([msg, Buffer.alloc(8)])), isCode("ERR_PARSE_TRAILING_BYTES"));
    const badType = Buffer.from(msg);
    badType[3] = 0x0b;
    assert.throws(() => decodeTtlv(badType), (e: unknown) => isCode("ERR_PARSE_BAD_VALUE")(e) && (e as TpmTrustError).details?.offset === 3);
    assert.throws(() => decodeTtlv(hex("42 00 20 | 02 | 00 00 00 08 | 00 00 00 08 00 00 00 00")), isCode("ERR_PARSE_BAD_VALUE"), "an Integer is 4 bytes");
    assert.throws(() => decodeTtlv(hex("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 02")), isCode("ERR_PARSE_BAD_VALUE"), "a Boolean is 0 or 1");
    assert.throws(() => decodeTtlv(hex("42 00 20 | 07 | 00 00 00 02 | C3 28 00 00 00 00 00 00")), isCode("ERR_PARSE_BAD_VALUE"), "text must be UTF-8");
    assert.throws(() => decodeTtlv(hex("42 00 20 | 01 | 00 00 00 04 | 00 00 00 00 00 00 00 00")), isCode("ERR_PARSE_BAD_VALUE"), "a structure's length is a multiple of 8");
    let deep: TtlvItem = int(0x420020, 1);
    for (let i = 0; i < 20; i++) deep = struct(0x420020, deep);
    assert.throws(() => decodeTtlv(encodeTtlv(deep)), isCode("ERR_PARSE_TOO_LARGE"));
    assert.throws(() => required(decodeTtlv(msg), 0x420094, "text"), isCode("ERR_PARSE_BAD_VALUE"));
    assert.throws(() => required(decodeTtlv(msg), 0x4200c2, "text"), isCode("ERR_PARSE_BAD_VALUE"), "a field of the wrong type");
  });
});

describe("a KMIP key server on PyKMIP", () => {
  let kms: PyKmip;
  let server: KeyServer;

  before(async () => {
    kms = await startPyKmip();
    // the client's certificate and key are in the PyKMIP folder: the key directory here
    process.env.TPMTRUST_KEY_DIR = kms.dir;
    server = KMIP.open(KMIP.configure(kms.settings()));
  });
  after(async () => {
    delete process.env.TPMTRUST_KEY_DIR;
    await server?.close();
    await kms?.cleanup();
  });

  test("settings: host, port and PEM files in the key directory; never key material", () => {
    const d = kms.dir;
    assert.deepEqual(KMIP.configure({ host: "kms.example", port: "5696", ca: "a.pem", cert: join(d, "b.pem"), key: "c.key" }), { host: "kms.example", port: 5696, ca: join(d, "a.pem"), cert: join(d, "b.pem"), key: join(d, "c.key") });
    for (const bad of [
      { host: "kms", port: 5696, ca: "", cert: "b", key: "c" },
      { host: "kms", port: 0, ca: "a", cert: "b", key: "c" },
      { host: "kms host", port: 5696, ca: "a", cert: "b", key: "c" },
      { host: "kms", port: 5696, ca: "a", cert: "b" },
      { host: "kms", port: 5696, ca: "a", cert: "b", key: "c", password: "x" },
    ]) {
      assert.throws(() => KMIP.configure(bad), isCode("ERR_VALIDATION"), JSON.stringify(bad));
    }
    // a file elsewhere: one answer whether it exists or not, naming only the key directory
    for (const setting of ["ca", "cert", "key"]) {
      const refusal = (path: string): string => {
        try {
          KMIP.configure({ ...kms.settings(), [setting]: path });
        } catch (e) {
          assert.ok(isCode("ERR_VALIDATION")(e), `${setting} ${path}: ${e}`);
          return (e as Error).message;
        }
        assert.fail(`${setting} ${path} was accepted`);
      };
      const messages = new Set(["/etc/passwd", "/etc/no-such-file", "../../etc/passwd"].map(refusal));
      assert.deepEqual([...messages], [`${setting} must name a file inside the key directory ${kms.dir} ($TPMTRUST_KEY_DIR)`]);
    }
  });

  test("AES-256-GCM inside the KMS: round trip, AAD bound, tampering detected, versions distinct", async () => {
    await server.check();
    const { v1 } = await checkSealing(server, "volumes");
    assert.match(v1.ref, /^uid:.+/);
  });

  test("adoption: a key the KMS holds, by Unique Identifier or Name; unsuitable keys are refused with the reason", async () => {
    const ref = await server.createKey("existing-primary");
    const uid = ref.slice(4);
    assert.equal(await server.adoptKey!(uid), ref);
    assert.equal(await server.adoptKey!("existing-primary"), ref);
    assert.equal(await server.adoptKey!("no-such-key"), undefined);
    // keys made by someone else, straight through KMIP
    const raw = new KmipClient({ host: kms.host, port: kms.port, ...readCreds(kms) });
    try {
      const create = async (name: string, bits: number, usage: number) => {
        const attr = (n: string, v: TtlvItem) => struct(TAG.Attribute, text(TAG.AttributeName, n), { ...v, tag: TAG.AttributeValue });
        const r = await raw.call(OPERATION.Create, [
          enumeration(TAG.ObjectType, OBJECT_TYPE_SYMMETRIC_KEY),
          struct(
            TAG.TemplateAttribute,
            attr("Cryptographic Algorithm", enumeration(0, ALGORITHM_AES)),
            attr("Cryptographic Length", int(0, bits)),
            attr("Cryptographic Usage Mask", int(0, usage)),
            attr("Name", struct(0, text(TAG.NameValue, name), enumeration(TAG.NameType, 1))),
          ),
        ]);
        return required(r, TAG.UniqueIdentifier, "text");
      };
      await create("short-key", 128, USAGE_ENCRYPT | USAGE_DECRYPT);
      await assert.rejects(server.adoptKey!("short-key"), (e: unknown) => isCode("ERR_KEY_UNSUITABLE")(e) && /128 bits, not 256/.test((e as Error).message));
      await create("encrypt-only", 256, USAGE_ENCRYPT);
      await assert.rejects(server.adoptKey!("encrypt-only"), (e: unknown) => isCode("ERR_KEY_UNSUITABLE")(e) && /Usage Mask/.test((e as Error).message));
      // a pre-active key is activated on adoption and then works
      const pre = await create("pre-active", 256, USAGE_ENCRYPT | USAGE_DECRYPT);
      const adopted = { keyId: "pre-active", version: 1, ref: (await server.adoptKey!("pre-active"))! };
      assert.equal(adopted.ref, `uid:${pre}`);
      assert.deepEqual(await server.decrypt(adopted, await server.encrypt(adopted, Buffer.from("x"), Buffer.alloc(0)), Buffer.alloc(0)), Buffer.from("x"));
      // two keys of one name: the operator must say which
      await create("twice", 256, USAGE_ENCRYPT | USAGE_DECRYPT);
      await create("twice", 256, USAGE_ENCRYPT | USAGE_DECRYPT);
      await assert.rejects(server.adoptKey!("twice"), isCode("ERR_CONFLICT"));
    } finally {
      await raw.close();
    }
  });

  test("retirement revokes and destroys the key inside the KMS; repeating it is harmless", async () => {
    const k = { keyId: "old", version: 1, ref: await server.createKey("old") };
    const sealed = await server.encrypt(k, Buffer.from("x"), Buffer.alloc(0));
    await server.retireKey!(k);
    await server.retireKey!(k);
    await assert.rejects(server.decrypt(k, sealed, Buffer.alloc(0)), isCode("ERR_KEY_SERVER_REFUSED"));
    assert.equal(await server.adoptKey!(k.ref.slice(4)), undefined, "the KMS no longer has it");
  });

  test("a certificate from another CA is refused by the KMS: ERR_KEY_SERVER_UNAVAILABLE, and the key file must be 0600", async () => {
    const stranger = KMIP.open(KMIP.configure(kms.settings(kms.stranger)));
    try {
      await assert.rejects(stranger.check(), isCode("ERR_KEY_SERVER_UNAVAILABLE"));
    } finally {
      await stranger.close();
    }
    const loose = join(kms.dir, "loose.key");
    copyFileSync(kms.client.key, loose);
    chmodSync(loose, 0o644);
    const s = KMIP.open(KMIP.configure({ ...kms.settings(), key: loose }));
    await assert.rejects(s.check(), (e: unknown) => isCode("ERR_IO")(e) && /chmod 600/.test((e as Error).message));
    await s.close();
  });

  test("the KMS down: ERR_KEY_SERVER_UNAVAILABLE; back up: the same key version decrypts what it sealed before", async () => {
    const k = { keyId: "survives", version: 1, ref: await server.createKey("survives") };
    const sealed = await server.encrypt(k, Buffer.from("kept"), Buffer.from("aad"));
    await kms.stop();
    await assert.rejects(server.encrypt(k, Buffer.from("x"), Buffer.alloc(0)), isCode("ERR_KEY_SERVER_UNAVAILABLE"));
    await assert.rejects(server.decrypt(k, sealed, Buffer.from("aad")), isCode("ERR_KEY_SERVER_UNAVAILABLE"));
    await kms.start();
    assert.deepEqual(await server.decrypt(k, sealed, Buffer.from("aad")), Buffer.from("kept"));
  });
});

function readCreds(kms: PyKmip) {
  return { ca: readFileSync(kms.client.ca), cert: readFileSync(kms.client.cert), key: readFileSync(kms.client.key) };
}

describe("key release over KMIP, end to end over HTTP", () => {
  let kms: PyKmip;
  let host: TpmHost;
  let store: Store;
  let url: string;
  let adminToken: string;
  let close: () => Promise<void>;
  let dir: string;

  const call = async (method: string, path: string, token: string | undefined, body?: unknown) => {
    const r = await fetch(`${url}${path}`, {
      method,
      headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const t = await r.text();
    return { status: r.status, body: t ? JSON.parse(t) : undefined };
  };
  const ok = async (method: string, path: string, token: string, body?: unknown, status = 200) => {
    const r = await call(method, path, token, body);
    assert.equal(r.status, status, JSON.stringify(r.body));
    return r.body;
  };

  before(async () => {
    [kms, host] = await Promise.all([startPyKmip(), startTpmHost({ logFile: "rhel8-gce-uefi.bin", akType: "ecc" })]);
    // the client's certificate and key are in the PyKMIP folder: the key directory of the service and the CLI
    process.env.TPMTRUST_KEY_DIR = kms.dir;
    dir = mkdtempSync(join(tmpdir(), "tpmtrust-kmip-e2e-"));
    store = await openStore(join(dir, "t.db"));
    const app = await buildApp({ store, logger: false, attest: { sweepMs: 0 } });
    await app.listen({ host: "127.0.0.1", port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    adminToken = (await store.adminTokens.create({ at: Date.now(), role: "admin" })).token;
    close = async () => {
      await app.close();
      await closeKeyServers(store);
      await store.close();
    };
    await addHost(store, host, { name: "web-1", hardwareClass: "lab" });
    await ok("POST", "/v1/policies", adminToken, { kind: "baseline", name: "gce", hardwareClass: "lab", document: learnBaseline("gce", [parseEventLog(readLog("rhel8-gce-uefi.bin"))], [0, 1, 2, 3, 4, 5, 6, 7]) }, 201);
  });
  after(async () => {
    delete process.env.TPMTRUST_KEY_DIR;
    await close?.();
    await Promise.all([host?.close(), kms?.cleanup()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("encrypt/decrypt through the KMS, rotation, retirement, the KMS down (503, nothing lost), adoption by the CLI", async () => {
    await ok("POST", "/v1/keys/servers", adminToken, { name: "kms", kind: "kmip", config: kms.settings() }, 201);
    await ok("POST", "/v1/keys/providers", adminToken, { name: "vm-disks", keyServer: "kms", primaryKeyId: "vm-disks" }, 201);
    await ok("PUT", "/v1/keys/clusters/lab", adminToken, { hardwareClasses: ["lab"], providers: ["vm-disks"] });
    const att = await attestOnce(url, host);
    assert.equal(att.body.verdict, "pass", JSON.stringify(att.body));
    const token = att.body.token as string;

    const enc1 = await ok("POST", "/v1/keys/vm-disks/encrypt", token, { plaintext: Buffer.from("disk key 1").toString("base64"), context: "vm=1" });
    assert.equal(enc1.keyVersion, 1);
    const dec1 = await ok("POST", "/v1/keys/vm-disks/decrypt", token, { ciphertext: enc1.ciphertext, context: "vm=1" });
    assert.equal(Buffer.from(dec1.plaintext, "base64").toString(), "disk key 1");
    const wrong = await call("POST", "/v1/keys/vm-disks/decrypt", token, { ciphertext: enc1.ciphertext, context: "vm=2" });
    assert.equal(wrong.body.code, "ERR_DECRYPT_FAILED");

    await ok("POST", "/v1/keys/providers/vm-disks/rotate", adminToken);
    const enc2 = await ok("POST", "/v1/keys/vm-disks/encrypt", token, { plaintext: Buffer.from("disk key 2").toString("base64") });
    assert.equal(enc2.keyVersion, 2);
    assert.equal(Buffer.from((await ok("POST", "/v1/keys/vm-disks/decrypt", token, { ciphertext: enc1.ciphertext, context: "vm=1" })).plaintext, "base64").toString(), "disk key 1", "the old version still decrypts");

    // the KMS down: 503 with its code; nothing stored changes, and everything works again once it is back
    await kms.stop();
    const down = await call("POST", "/v1/keys/vm-disks/decrypt", token, { ciphertext: enc2.ciphertext });
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.equal(down.body.code, "ERR_KEY_SERVER_UNAVAILABLE");
    const downRetire = await call("POST", "/v1/keys/providers/vm-disks/versions/1/retire", adminToken);
    assert.equal(downRetire.status, 503, JSON.stringify(downRetire.body));
    assert.equal((await store.keys.getVersion("vm-disks", 1))?.retiredAt, null, "a failed retirement changes nothing");
    await kms.start();
    assert.equal(Buffer.from((await ok("POST", "/v1/keys/vm-disks/decrypt", token, { ciphertext: enc2.ciphertext })).plaintext, "base64").toString(), "disk key 2");

    await ok("POST", "/v1/keys/providers/vm-disks/versions/1/retire", adminToken);
    const retired = await call("POST", "/v1/keys/vm-disks/decrypt", token, { ciphertext: enc1.ciphertext, context: "vm=1" });
    assert.equal(retired.body.code, "ERR_KEY_RETIRED");

    // the CLI: a kmip key server, and a provider that adopts a key the KMS already holds
    const ops = KMIP.open(KMIP.configure(kms.settings()));
    const uid = (await ops.createKey("ops-made")).slice(4);
    await ops.close();
    const cli = (args: string[]) =>
      promisify(execFile)(process.execPath, [join(import.meta.dirname, "..", "..", "bin", "tpmtrust.js"), ...args], { env: { ...process.env, TPMTRUST_DB: join(dir, "t.db") } });
    const s = kms.settings();
    await cli(["keys", "servers", "add", "kms2", "--kind", "kmip", "--host", s.host, "--port", String(s.port), "--ca", s.ca, "--cert", s.cert, "--key", s.key]);
    const out = await cli(["keys", "providers", "add", "adopted", "--key-server", "kms2", "--key-id", uid, "--json"]);
    assert.equal(JSON.parse(out.stdout).primaryKeyId, uid);
    const [entry] = (await store.audit.list({ action: "keys.provider.create" })).filter((e) => e.subject === "adopted");
    assert.equal((entry.details as { key: string }).key, "adopted");
  });
});
