import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TpmTrustError } from "../../src/errors.js";
import { TPM_ALG, TPM_CAP, TPM_CC, TPM_ECC, TPM_RH } from "../../src/tpm/constants.js";
import {
  createAk,
  createEk,
  EvictControl,
  FlushContext,
  GetCapability,
  getRandomBytes,
  marshalCommand,
  maxNvBuffer,
  NV_DefineSpace,
  NV_ReadPublic,
  nvReadAll,
  nvWriteAll,
  password,
  PCR_Extend,
  pcrReadAll,
  PolicyCommandCode,
  PolicyGetDigest,
  ReadPublic,
  startPolicySession,
  startupOnce,
  TPMA_NV,
  TpmClient,
  tpmInfo,
  unmarshalResponse,
} from "../../src/tpm/commands/index.js";
import { policyCommandCodeDigest } from "../../src/tpm/policydigest.js";
import { TpmRcError } from "../../src/tpm/rc.js";
import { nvName, pcrSelection } from "../../src/tpm/structures.js";
import { RecordingTransport, ReplayTransport, SwtpmTransport } from "../../src/tpm/transport/index.js";
import type { Transport } from "../../src/tpm/transport/transport.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { tpm2, tpm2Raw } from "../helpers/tpm2tools.js";

let tpm: Swtpm;
let client: TpmClient;
let dir: string;
const f = (name: string) => join(dir, name);

before(async () => {
  tpm = await startSwtpm();
  client = new TpmClient(new SwtpmTransport({ port: tpm.port }));
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-client-"));
});
after(async () => {
  await tpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const isCode = (code: string) => (e: unknown) => e instanceof TpmTrustError && e.code === code;

test("Startup: already started by swtpm; a TPM powered on with CMD_INIT starts once", async () => {
  assert.equal(await startupOnce(client), false);
  const cold = await startSwtpm({ startupClear: false });
  try {
    const t = new SwtpmTransport({ port: cold.port });
    await t.init();
    const c = new TpmClient(t);
    assert.equal(await startupOnce(c), true);
    assert.equal(await startupOnce(c), false);
    assert.equal((await getRandomBytes(c, 16)).length, 16);
  } finally {
    await cold.stop();
  }
});

test("GetRandom beyond one digest; GetCapability lists", async () => {
  const r = await getRandomBytes(client, 200);
  assert.equal(r.length, 200);
  assert.notDeepEqual(r.subarray(0, 64), r.subarray(64, 128));
  const algs = await client.run(GetCapability, { capability: TPM_CAP.ALGS, property: 0, propertyCount: 256 });
  assert.ok(algs.data.capability === TPM_CAP.ALGS && algs.data.algs.some((a) => a.alg === TPM_ALG.SHA256));
  const curves = await client.run(GetCapability, { capability: TPM_CAP.ECC_CURVES, property: 0, propertyCount: 64 });
  assert.ok(curves.data.capability === TPM_CAP.ECC_CURVES && curves.data.curves.includes(TPM_ECC.NIST_P256));
  const cmds = await client.run(GetCapability, { capability: TPM_CAP.COMMANDS, property: TPM_CC.Quote, propertyCount: 1 });
  assert.ok(cmds.data.capability === TPM_CAP.COMMANDS && (cmds.data.commands[0] & 0xffff) === TPM_CC.Quote);
});

test("tpm info matches tpm2_getcap properties-fixed", async () => {
  const info = await tpmInfo(client);
  const yaml = await tpm2(tpm, "tpm2_getcap", ["properties-fixed"]);
  const raw = (prop: string) => Number(new RegExp(`${prop}:\\s+raw: (0x[0-9A-Fa-f]+)`).exec(yaml)![1]);
  assert.equal(info.family, "2.0");
  assert.equal(info.manufacturer, "IBM");
  assert.equal(info.manufacturerId, raw("TPM2_PT_MANUFACTURER"));
  assert.equal(info.firmwareVersion, (BigInt(raw("TPM2_PT_FIRMWARE_VERSION_1")) << 32n) | BigInt(raw("TPM2_PT_FIRMWARE_VERSION_2")));
  assert.equal(info.revision, raw("TPM2_PT_REVISION") / 100);
  assert.equal(info.maxNvBuffer, raw("TPM2_PT_NV_BUFFER_MAX"));
  assert.deepEqual(
    info.pcrBanks.map((b) => b.hash),
    ["sha1", "sha256", "sha384", "sha512"],
  );
});

test("PCR_Extend in four banks, PCR_Read across banks (more than 8 digests) equals tpm2_pcrread", async () => {
  const event = Buffer.from("tpmtrust-pcr-event");
  const banks = [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512];
  const node = { [TPM_ALG.SHA1]: "sha1", [TPM_ALG.SHA256]: "sha256", [TPM_ALG.SHA384]: "sha384", [TPM_ALG.SHA512]: "sha512" } as Record<number, string>;
  await client.run(PCR_Extend, { pcrHandle: 23, digests: banks.map((hashAlg) => ({ hashAlg, digest: createHash(node[hashAlg]).update(event).digest() })) });
  const all = [...Array(24).keys()];
  const { values } = await pcrReadAll(client, banks.map((h) => pcrSelection(h, all)));
  for (const h of banks) {
    const size = createHash(node[h]).digest().length;
    const expected = createHash(node[h]).update(Buffer.alloc(size)).update(createHash(node[h]).update(event).digest()).digest();
    assert.deepEqual(values.get(h)?.get(23), expected, `${node[h]} PCR 23`);
    await tpm2(tpm, "tpm2_pcrread", [`${node[h]}:all`, "-o", f("pcrs.bin")]);
    assert.deepEqual(Buffer.concat(all.map((p) => values.get(h)!.get(p)!)), readFileSync(f("pcrs.bin")), `${node[h]} bank`);
  }
  await assert.rejects(client.run(PCR_Extend, { pcrHandle: 23, digests: [{ hashAlg: TPM_ALG.SHA256, digest: Buffer.alloc(20) }] }), isCode("ERR_USAGE"));
});

test("NV: define, chunked write and read (2000 bytes through a 1024-byte buffer), interop with tpm2-tools, auth failure", async () => {
  const index = 0x01500010;
  const attributes = TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA;
  const nv = { nvIndex: index, nameAlg: TPM_ALG.SHA256, attributes, authPolicy: Buffer.alloc(0), dataSize: 2000 };
  await client.run(NV_DefineSpace, { publicInfo: nv, indexAuth: Buffer.from("nv-secret") });
  const auth = password("nv-secret");
  assert.ok((await maxNvBuffer(client)) < 2000, "the write must take more than one chunk");
  const data = randomBytes(2000);
  await nvWriteAll(client, index, data, { auth });
  assert.deepEqual(await nvReadAll(client, index, { auth }), data);
  assert.deepEqual(await nvReadAll(client, index, { auth, offset: 1000, size: 500 }), data.subarray(1000, 1500));

  const { nvPublic, name } = await client.run(NV_ReadPublic, { nvIndex: index });
  assert.ok(nvPublic.attributes & TPMA_NV.WRITTEN);
  assert.deepEqual(name, nvName(nvPublic));

  await tpm2(tpm, "tpm2_nvread", [`0x${index.toString(16)}`, "-C", `0x${index.toString(16)}`, "-P", "nv-secret", "-o", f("nv.bin")]);
  assert.deepEqual(readFileSync(f("nv.bin")), data);
  writeFileSync(f("patch.bin"), Buffer.from("written by tpm2_nvwrite"));
  await tpm2(tpm, "tpm2_nvwrite", [`0x${index.toString(16)}`, "-C", `0x${index.toString(16)}`, "-P", "nv-secret", "--offset", "1500", "-i", f("patch.bin")]);
  assert.equal((await nvReadAll(client, index, { auth, offset: 1500, size: 23 })).toString(), "written by tpm2_nvwrite");

  await assert.rejects(nvReadAll(client, index, { auth: password("wrong") }), (e: unknown) => {
    assert.ok(e instanceof TpmRcError);
    assert.equal(e.rc.name, "TPM_RC_BAD_AUTH", "a noDA index answers BAD_AUTH, not AUTH_FAIL");
    assert.deepEqual(e.rc.subject, { kind: "session", index: 1 });
    return true;
  });
});

test("PolicyCommandCode: trial digest equals software and tpm2_policycommandcode", async () => {
  const trial = await startPolicySession(client, { trial: true });
  await client.run(PolicyCommandCode, { policySession: trial.handle, code: TPM_CC.Duplicate });
  const digest = await client.run(PolicyGetDigest, { policySession: trial.handle });
  await client.run(FlushContext, { flushHandle: trial.handle });
  assert.deepEqual(digest, policyCommandCodeDigest(TPM_ALG.SHA256, TPM_CC.Duplicate));
  await tpm2(tpm, "tpm2_startauthsession", ["-S", f("trial.ctx")], { flush: false });
  await tpm2(tpm, "tpm2_policycommandcode", ["-S", f("trial.ctx"), "-L", f("dup.policy"), "TPM2_CC_Duplicate"]);
  assert.deepEqual(readFileSync(f("dup.policy")), digest);
});

test("EvictControl: a key made persistent is readable by handle (also by tpm2-tools) and can be evicted", async () => {
  const ek = await createEk(client, "ecc-p256");
  try {
    await client.run(EvictControl, { objectHandle: ek.handle, persistentHandle: 0x81000100 });
  } finally {
    await client.run(FlushContext, { flushHandle: ek.handle });
  }
  assert.deepEqual((await client.run(ReadPublic, { objectHandle: 0x81000100 })).name, ek.name);
  await tpm2Raw(tpm, "tpm2_readpublic", ["-c", "0x81000100", "-n", f("p.name")]);
  assert.deepEqual(readFileSync(f("p.name")), ek.name);
  await client.run(EvictControl, { objectHandle: 0x81000100, persistentHandle: 0x81000100 });
  await assert.rejects(client.run(ReadPublic, { objectHandle: 0x81000100 }), (e: unknown) => e instanceof TpmRcError && e.rc.name === "TPM_RC_HANDLE");
});

/** Forwards to `inner`; a command of `code` may be changed on its way to the TPM, or its answer on the way back. */
class Tampering implements Transport {
  constructor(
    private readonly inner: Transport,
    private readonly code: number,
    private readonly edit: { command?: (c: Buffer) => Buffer; response?: (r: Buffer) => Buffer },
  ) {}
  async send(command: Buffer): Promise<Buffer> {
    const mine = command.readUInt32BE(6) === this.code;
    const resp = await this.inner.send(mine && this.edit.command ? this.edit.command(Buffer.from(command)) : command);
    return mine && this.edit.response ? this.edit.response(Buffer.from(resp)) : resp;
  }
  async close(): Promise<void> {}
}

test("attack: answers that do not fit the request are refused: a ReadPublic Name not of its public area, another capability than asked for, a short NV_Read", async () => {
  const ek = await createEk(client, "ecc-p256");
  try {
    // Part 3 §12.4 response: TPM2B_PUBLIC ‖ TPM2B_NAME ‖ TPM2B_NAME; one bit of the Name flipped
    const flipName = (r: Buffer) => {
      const nameAt = 12 + r.readUInt16BE(10);
      r[nameAt + 1 + r.readUInt16BE(nameAt)] ^= 1;
      return r;
    };
    const lying = new TpmClient(new Tampering(client.transport, TPM_CC.ReadPublic, { response: flipName }));
    await assert.rejects(lying.run(ReadPublic, { objectHandle: ek.handle }), isCode("ERR_NAME_MISMATCH"));
  } finally {
    await client.run(FlushContext, { flushHandle: ek.handle });
  }
  // Part 3 §30.2 command: capability is the first parameter; the TPM truthfully answers the one it was sent
  const otherCapability = (c: Buffer) => (c.writeUInt32BE(TPM_CAP.ECC_CURVES, 10), c);
  const swapped = new TpmClient(new Tampering(client.transport, TPM_CC.GetCapability, { command: otherCapability }));
  await assert.rejects(swapped.run(GetCapability, { capability: TPM_CAP.ALGS, property: 0, propertyCount: 8 }), isCode("ERR_PARSE_BAD_VALUE"));
  // Part 3 §31.13 command: size ‖ offset are the last parameters; the TPM is asked for one byte less
  const index = 0x01500011;
  const attributes = TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA;
  await client.run(NV_DefineSpace, { publicInfo: { nvIndex: index, nameAlg: TPM_ALG.SHA256, attributes, authPolicy: Buffer.alloc(0), dataSize: 16 } });
  await nvWriteAll(client, index, randomBytes(16));
  const oneLess = (c: Buffer) => (c.writeUInt16BE(c.readUInt16BE(c.length - 4) - 1, c.length - 4), c);
  const short = new TpmClient(new Tampering(client.transport, TPM_CC.NV_Read, { command: oneLess }));
  await assert.rejects(nvReadAll(short, index), isCode("ERR_PARSE_BAD_VALUE"));
  assert.equal((await nvReadAll(client, index)).length, 16);
});

test("a recorded session with policy sessions replays byte for byte with the same randomness", async () => {
  const seeded = () => {
    let n = 0;
    return (len: number) => createHash("sha512").update(`seed-${n++}`).digest().subarray(0, len);
  };
  const rec = new RecordingTransport(new SwtpmTransport({ port: tpm.port }));
  const live = new TpmClient(rec, { random: seeded() });
  const flow = async (c: TpmClient) => {
    const ek = await createEk(c, "rsa2048");
    const ak = await createAk(c, ek, { type: "ecc" });
    await c.run(FlushContext, { flushHandle: ak.handle });
    await c.run(FlushContext, { flushHandle: ek.handle });
    return { ek: ek.name, ak: ak.name, akPublic: ak.public };
  };
  const a = await flow(live);
  const replay = new ReplayTransport(rec.exchanges);
  const b = await flow(new TpmClient(replay, { random: seeded() }));
  assert.deepEqual(b, a);
  assert.equal(replay.remaining, 0);
  await assert.rejects(flow(new TpmClient(new ReplayTransport(rec.exchanges))), isCode("ERR_TPM_TRANSPORT"), "other nonces do not replay");
});

test("command marshalling (Part 1 §18.7): TPM2_Certify with two password sessions", () => {
  const cmd = marshalCommand(
    { name: "TPM2_Certify", code: TPM_CC.Certify, handles: [0x80000001, 0x80000000], params: Buffer.from("0002abcd0010", "hex") },
    [password().authCommand(), password("pw").authCommand()],
  );
  const expected =
    "8002" + "00000030" + "00000148" + "80000001" + "80000000" + "00000014" + "40000009" + "0000" + "00" + "0000" + "40000009" + "0000" + "00" + "0002" + "7077" + "0002abcd0010";
  assert.equal(cmd.toString("hex"), expected);
  assert.equal(cmd.length, 0x30);
  const plain = marshalCommand({ name: "TPM2_GetRandom", code: TPM_CC.GetRandom, params: Buffer.from("0010", "hex") }, []);
  assert.equal(plain.toString("hex"), "80010000000c0000017b0010");
});

test("response parsing (Part 1 §18.8): parameterSize, auth area, error codes, malformed responses", () => {
  const ok = Buffer.from("80020000001b" + "00000000" + "80000002" + "00000004" + "00020102" + "0000" + "01" + "0000", "hex");
  const r = unmarshalResponse(ok, "X", 1, 1);
  assert.deepEqual(r.handles, [0x80000002]);
  assert.equal(r.params.toString("hex"), "00020102");
  assert.equal(r.paramsOffset, 18);
  assert.deepEqual(r.auths, [{ nonce: Buffer.alloc(0), sessionAttributes: 1, hmac: Buffer.alloc(0) }]);

  assert.throws(() => unmarshalResponse(Buffer.from("80010000000a0000012f", "hex"), "TPM2_ActivateCredential", 0, 2), (e: unknown) => {
    assert.ok(e instanceof TpmRcError);
    assert.equal(e.code, "ERR_TPM_RC");
    assert.equal(e.rc.name, "TPM_RC_AUTH_UNAVAILABLE");
    assert.match(e.message, /TPM2_ActivateCredential/);
    return true;
  });
  assert.throws(() => unmarshalResponse(Buffer.from("80010000000b0000000000", "hex").subarray(0, 10), "X", 0, 0), isCode("ERR_PARSE_BAD_VALUE"), "size field");
  assert.throws(() => unmarshalResponse(Buffer.from("80010000000a00000000", "hex"), "X", 0, 1), isCode("ERR_PARSE_BAD_VALUE"), "tag without sessions");
  assert.throws(() => unmarshalResponse(Buffer.concat([ok, Buffer.from([0])]).fill(0x1c, 5, 6), "X", 1, 1), isCode("ERR_PARSE_TRAILING_BYTES"));
  assert.throws(() => unmarshalResponse(ok.subarray(0, 20).fill(0x14, 5, 6), "X", 1, 1), isCode("ERR_PARSE_TRUNCATED"));
});
