import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TpmTrustError } from "../../src/errors.js";
import {
  DeviceTransport,
  decodeRecording,
  openTransport,
  parseTpmSpec,
  RecordingTransport,
  ReplayTransport,
  ResponseAssembler,
  SwtpmTransport,
} from "../../src/tpm/transport/index.js";
import { startSwtpm, startSwtpmChardev } from "../helpers/swtpm.js";
import { tpm2Raw } from "../helpers/tpm2tools.js";

// Part 3 §16.1 TPM2_GetRandom(bytesRequested = 16); §9.3 TPM2_Startup(TPM_SU_CLEAR)
const GET_RANDOM_16 = Buffer.from("80010000000c0000017b0010", "hex");
const STARTUP_CLEAR = Buffer.from("80010000000c000001440000", "hex");

const rc = (resp: Buffer) => resp.readUInt32BE(6);

function isCode(code: string) {
  return (e: unknown) => e instanceof TpmTrustError && e.code === code;
}

function checkRandom(resp: Buffer): void {
  assert.equal(resp.length, 28);
  assert.equal(resp.readUInt16BE(0), 0x8001);
  assert.equal(resp.readUInt32BE(2), 28);
  assert.equal(rc(resp), 0);
  assert.equal(resp.readUInt16BE(10), 16);
}

test("swtpm TCP: GetRandom; other clients (tpm2-tools) can use the same swtpm in between", async () => {
  const tpm = await startSwtpm();
  const t = new SwtpmTransport({ port: tpm.port });
  try {
    const a = await t.send(GET_RANDOM_16);
    checkRandom(a);
    assert.equal((await tpm2Raw(tpm, "tpm2_getrandom", ["8"], { flush: false })).length, 8);
    const [b, c] = await Promise.all([t.send(GET_RANDOM_16), t.send(GET_RANDOM_16)]);
    checkRandom(b);
    checkRandom(c);
    assert.notDeepEqual(a.subarray(12), b.subarray(12));
    assert.equal(rc(await t.send(STARTUP_CLEAR)), 0x100, "swtpm --flags startup-clear already ran Startup");
  } finally {
    await t.close();
    await tpm.stop();
  }
  await assert.rejects(t.send(GET_RANDOM_16), isCode("ERR_TPM_TRANSPORT"));
});

test("swtpm TCP without startup flags: off until CMD_INIT, then Startup; SET_LOCALITY", async () => {
  const tpm = await startSwtpm({ startupClear: false });
  const t = new SwtpmTransport({ port: tpm.port, ctrlPort: tpm.ctrlPort });
  try {
    assert.equal(rc(await t.send(GET_RANDOM_16)), 0x101, "TPM_RC_FAILURE before power-on");
    await t.init();
    assert.equal(rc(await t.send(GET_RANDOM_16)), 0x100, "TPM_RC_INITIALIZE before Startup");
    assert.equal(rc(await t.send(STARTUP_CLEAR)), 0);
    await t.setLocality(0);
    checkRandom(await t.send(GET_RANDOM_16));
    await assert.rejects(t.setLocality(5), isCode("ERR_TPM_TRANSPORT"));
  } finally {
    await tpm.stop();
  }
});

test("swtpm TCP: nothing listening -> ERR_TPM_TRANSPORT", async () => {
  const tpm = await startSwtpm();
  const port = tpm.port;
  await tpm.stop();
  await assert.rejects(new SwtpmTransport({ port }).send(GET_RANDOM_16), isCode("ERR_TPM_TRANSPORT"));
});

test("character device protocol against swtpm chardev on a socketpair", async () => {
  const dev = await startSwtpmChardev();
  const t = DeviceTransport.fromFd(dev.fd, "swtpm-chardev");
  try {
    assert.equal(rc(await t.send(STARTUP_CLEAR)), 0x100);
    checkRandom(await t.send(GET_RANDOM_16));
    const all = await Promise.all([1, 2, 3].map(() => t.send(GET_RANDOM_16)));
    all.forEach(checkRandom);
    await t.close();
    await assert.rejects(t.send(GET_RANDOM_16), isCode("ERR_TPM_TRANSPORT"));
  } finally {
    await dev.stop();
  }
});

test("character device: a missing device is ERR_TPM_TRANSPORT", async () => {
  await assert.rejects(DeviceTransport.open("/dev/tpmrm-does-not-exist"), isCode("ERR_TPM_TRANSPORT"));
});

/** A hostile "TPM" on loopback that answers every connection with `answer`. */
async function fakeTpm(answer: (s: Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.once("data", () => answer(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test("responses are bounded and checked: size, tag, extra bytes, early close, timeout", async () => {
  const header = (tag: number, size: number) => {
    const b = Buffer.alloc(10);
    b.writeUInt16BE(tag, 0);
    b.writeUInt32BE(size, 2);
    return b;
  };
  const cases: [string, (s: Socket) => void][] = [
    ["oversized", (s) => s.write(header(0x8001, 70_000))],
    ["size below header", (s) => s.write(header(0x8001, 4))],
    ["bad tag", (s) => s.write(header(0x1234, 10))],
    ["extra bytes", (s) => s.write(Buffer.concat([header(0x8001, 10), Buffer.alloc(3)]))],
    ["closed early", (s) => s.end(header(0x8001, 20))],
    ["silent", () => undefined],
  ];
  for (const [name, answer] of cases) {
    const fake = await fakeTpm(answer);
    try {
      await assert.rejects(new SwtpmTransport({ port: fake.port, timeoutMs: 300 }).send(GET_RANDOM_16), isCode("ERR_TPM_TRANSPORT"), name);
    } finally {
      await fake.close();
    }
  }
});

test("a response split into single bytes is reassembled", async () => {
  const resp = Buffer.from("80010000001c000000000010" + "ab".repeat(16), "hex");
  const fake = await fakeTpm((s) => {
    let i = 0;
    const tick = () => {
      if (i < resp.length) s.write(resp.subarray(i, ++i), tick);
    };
    tick();
  });
  try {
    assert.deepEqual(await new SwtpmTransport({ port: fake.port }).send(GET_RANDOM_16), resp);
  } finally {
    await fake.close();
  }
  const a = new ResponseAssembler();
  for (let i = 0; i < resp.length - 1; i++) assert.equal(a.push(resp.subarray(i, i + 1)), undefined);
  assert.deepEqual(a.push(resp.subarray(resp.length - 1)), resp);
});

test("commands are checked before sending", async () => {
  const t = new SwtpmTransport({ port: 1 });
  await assert.rejects(t.send(Buffer.from("8001000000", "hex")), isCode("ERR_TPM_TRANSPORT"));
  await assert.rejects(t.send(Buffer.from("80010000000d0000017b0010", "hex")), isCode("ERR_TPM_TRANSPORT"), "size field != length");
});

test("record against swtpm, then replay from the file", async () => {
  const tpm = await startSwtpm();
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-rec-"));
  const file = join(dir, "rec.json");
  try {
    const rec = new RecordingTransport(new SwtpmTransport({ port: tpm.port }));
    const r1 = await rec.send(GET_RANDOM_16);
    const r2 = await rec.send(STARTUP_CLEAR);
    await rec.save(file);
    await rec.close();
    await tpm.stop();

    const replay = await openTransport(`replay:${file}`);
    assert.ok(replay instanceof ReplayTransport);
    assert.deepEqual(await replay.send(GET_RANDOM_16), r1);
    await assert.rejects(replay.send(GET_RANDOM_16), isCode("ERR_TPM_TRANSPORT"), "differs from the recording");
    assert.deepEqual(await replay.send(STARTUP_CLEAR), r2);
    assert.equal(replay.remaining, 0);
    await assert.rejects(replay.send(GET_RANDOM_16), isCode("ERR_TPM_TRANSPORT"), "exhausted");

    const doc = JSON.parse(readFileSync(file, "utf8"));
    doc.exchanges[0].command = "zz";
    writeFileSync(file, JSON.stringify(doc));
    await assert.rejects(ReplayTransport.load(file), isCode("ERR_PARSE_FORMAT"));
    await assert.rejects(ReplayTransport.load(join(dir, "missing.json")), isCode("ERR_IO"));
  } finally {
    await tpm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const bad of ["", "[]", '{"format":"x","exchanges":[]}', '{"format":"tpmtrust-tpm-recording/1"}', '{"format":"tpmtrust-tpm-recording/1","exchanges":[1]}']) {
    assert.throws(() => decodeRecording(bad), isCode("ERR_PARSE_FORMAT"), bad);
  }
});

test("--tpm option strings", () => {
  assert.deepEqual(parseTpmSpec("swtpm:host=127.0.0.1,port=2321"), { kind: "swtpm", host: "127.0.0.1", port: 2321 });
  assert.deepEqual(parseTpmSpec("swtpm:port=4000"), { kind: "swtpm", host: "127.0.0.1", port: 4000 });
  assert.deepEqual(parseTpmSpec("swtpm"), { kind: "swtpm", host: "127.0.0.1", port: 2321 });
  assert.deepEqual(parseTpmSpec("/dev/tpmrm0"), { kind: "device", path: "/dev/tpmrm0" });
  assert.deepEqual(parseTpmSpec("device:/dev/tpm0"), { kind: "device", path: "/dev/tpm0" });
  assert.deepEqual(parseTpmSpec("replay:rec.json"), { kind: "replay", path: "rec.json" });
  for (const bad of ["", "mssim:port=2321", "swtpm:port=0", "swtpm:port=65535", "swtpm:port=12x", "swtpm:host=a b", "swtpm:foo=1", "device:tpm0", "replay:"]) {
    assert.throws(() => parseTpmSpec(bad), isCode("ERR_USAGE"), bad);
  }
});
