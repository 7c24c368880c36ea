import { test } from "node:test";
import assert from "node:assert/strict";
import { isTpmTrustError } from "../../../src/errors.js";
import { eventTypeName, parseEventLog, type EventLog } from "../../../src/verify/eventlog/index.js";
import { agileRecord, ALG, EFI_GLOBAL, expected, fixture, h, LOGS, sha1Record, specId03, u32, u64, variableData } from "./build.js";

function parseCode(bytes: Uint8Array): { code: string; reason: unknown; offset: unknown } {
  try {
    parseEventLog(bytes);
  } catch (e) {
    assert.ok(isTpmTrustError(e), `not a TpmTrustError: ${e}`);
    return { code: e.code, reason: e.details?.reason, offset: e.details?.offset };
  }
  assert.fail("expected a parse error");
}

for (const name of LOGS) {
  test(`${name}: format, event count and event types as its source states`, () => {
    const e = expected[name];
    const log = parseEventLog(fixture(name));
    assert.equal(log.format, e.format);
    assert.equal(log.events.length, e.events);
    const types: Record<string, number> = {};
    for (const ev of log.events) types[ev.typeName] = (types[ev.typeName] ?? 0) + 1;
    assert.deepEqual(types, e.event_types);
    assert.deepEqual(log.quirks, []);
    assert.equal(log.size, fixture(name).length);
  });
}

test("crypto-agile logs take their banks from Spec ID Event03", () => {
  const banks = (n: string) => parseEventLog(fixture(n)).algorithms.map((a) => `${a.bank}:${a.digestSize}`);
  assert.deepEqual(banks("rhel8-gce-uefi.bin"), ["sha1:20", "sha256:32", "sha384:48"]);
  assert.deepEqual(banks("four-banks-incl-sha512.bin"), ["sha1:20", "sha256:32", "sha384:48", "sha512:64"]);
  assert.deepEqual(banks("windows-option-rom-sha1.bin"), ["sha1:20"]);
  const spec = parseEventLog(fixture("laptop-startup-locality3.bin")).specId!;
  assert.equal(spec.signature, "Spec ID Event03");
  assert.equal(spec.specVersion, "2.0");
  assert.equal(spec.uintnSize, 8);
});

test("EV_NO_ACTION kinds: Spec ID, StartupLocality, Windows SIPA trust point at PCR 0xFFFFFFFF", () => {
  const laptop = parseEventLog(fixture("laptop-startup-locality3.bin"));
  assert.deepEqual(laptop.events[1].decoded, { kind: "startup-locality", locality: 3 });
  const win = parseEventLog(fixture("windows-option-rom-sha1.bin"));
  const last = win.events.at(-1)!;
  assert.equal(last.pcr, 0xffffffff);
  assert.equal(last.typeName, "EV_NO_ACTION");
});

test("decoded data of the PC Client event types in the real logs", () => {
  const rhel = parseEventLog(fixture("rhel8-gce-uefi.bin"));
  const d = (i: number) => rhel.events[i].decoded;
  assert.deepEqual(d(1), { kind: "text", encoding: "utf16le", text: "GCE Virtual Firmware v1" });
  const sb = d(3);
  assert.ok(sb.kind === "efi-variable" && sb.name === "SecureBoot" && sb.guid === "8be4df61-93ca-11d2-aa0d-00e098032b8c");
  assert.deepEqual(sb.parsed, { kind: "boolean", value: true, raw: 1 });
  const dbx = d(7);
  assert.ok(dbx.kind === "efi-variable" && dbx.parsed.kind === "signature-lists");
  assert.equal(dbx.parsed.lists.filter((l) => l.typeName === "sha256").reduce((n, l) => n + l.signatures.length, 0), 183);
  assert.deepEqual(d(8), { kind: "separator", value: 0, error: false });
  const order = d(9);
  assert.ok(order.kind === "efi-variable" && order.parsed.kind === "boot-order");
  assert.deepEqual(order.parsed.order, [2, 0, 1]);
  const boot = d(10);
  assert.ok(boot.kind === "efi-variable" && boot.parsed.kind === "load-option");
  assert.match(boot.parsed.option.description, /^Red Hat Enterprise Linux/);
  assert.equal(boot.parsed.option.devicePath.filePath, "\\EFI\\redhat\\shimx64.efi");
  assert.deepEqual(d(13), { kind: "text", encoding: "ascii", text: "Calling EFI Application from Boot Option" });
  const gpt = d(22);
  assert.ok(gpt.kind === "gpt");
  assert.equal(gpt.partitions.length, 2);
  const shim = d(23);
  assert.ok(shim.kind === "image-load");
  assert.equal(shim.devicePath.text, "PciRoot(0x0)/Pci(0x3,0x0)/Scsi(0x1,0x0)/HD(1,GPT,ef72374c-2630-46a1-88d6-082693781140,0x800,0x64000)/\\EFI\\redhat\\shimx64.efi");
  const grub = d(26);
  assert.ok(grub.kind === "image-load" && grub.trailing === 8, "shim's 8 bytes of slack after the device path are tolerated and counted");
  const kernel = d(77);
  assert.ok(kernel.kind === "image-load" && kernel.devicePath.raw.length === 0 && kernel.devicePath.text === "");
  const auth = d(27);
  assert.ok(auth.kind === "efi-variable" && auth.name === "Shim" && auth.parsed.kind === "signature-data" && auth.parsed.owner === undefined);
  assert.deepEqual(d(75), { kind: "text", encoding: "ascii", text: rhel.events[75].data.toString("latin1").replace(/\0$/, "") });

  const win = parseEventLog(fixture("windows-option-rom-sha1.bin"));
  const w = (i: number) => win.events[i].decoded;
  assert.deepEqual(w(1), { kind: "firmware-blob", base: "0xff6a1000", length: 0x5ff000 });
  assert.deepEqual(w(9), { kind: "text", encoding: "ascii", text: "ACPI DATA" });
  const opt = w(11);
  assert.ok(opt.kind === "image-load");
  assert.equal(opt.devicePath.text, "PciRoot(0x0)/Pci(0x2,0x0)/Pci(0x0,0x0)/Offset(0xf600,0x207ff)");
  assert.deepEqual(w(44), { kind: "compact-hash", value: 0x10 });
  const tag = w(45);
  assert.ok(tag.kind === "sipa");
  assert.equal(tag.items[0].name, "TRUSTBOUNDARY");
  assert.ok(tag.items[0].children!.some((c) => c.name === "COUNTERID"));
  assert.deepEqual(w(55), { kind: "separator", value: 0x4c434257, error: false }, "Windows separates PCRs 12-14 with \"WBCL\"");
  const nvme = parseEventLog(fixture("laptop-startup-locality3.bin")).events[28].decoded;
  assert.ok(nvme.kind === "image-load" && nvme.devicePath.text.includes("/NVMe(0x1,00-25-38-8C-91-B9-6E-FE)/HD(2,GPT,"));
});

test("a malformed event body is kept raw as undecodable, never failing the log", () => {
  const win = parseEventLog(fixture("windows-option-rom-sha1.bin"));
  const tp = win.events.at(-1)!.decoded;
  assert.equal(tp.kind, "undecodable");
  assert.ok(tp.kind === "undecodable" && tp.offset > win.events.at(-1)!.offset);
});

test("unknown algorithms are sized from the Spec ID event and kept; unknown event types kept raw", () => {
  const data = Buffer.from("abc");
  const log = Buffer.concat([
    specId03([{ alg: ALG.sha256 }, { alg: 0x00aa, size: 40 }]),
    agileRecord(0, 0x7777, data, [ALG.sha256, [0x00aa, Buffer.alloc(40, 7)]]),
  ]);
  const p = parseEventLog(log);
  assert.deepEqual(p.algorithms.map((a) => [a.bank, a.digestSize]), [["sha256", 32], ["0x00aa", 40]]);
  assert.deepEqual(p.events[1].digests["0x00aa"], Buffer.alloc(40, 7));
  assert.equal(p.events[1].typeName, "EV_UNKNOWN_0x00007777");
  assert.deepEqual(p.events[1].decoded, { kind: "raw" });
  assert.equal(eventTypeName(0x800000e0), "EV_EFI_VARIABLE_AUTHORITY");
});

test("TPM 1.2-format log: first EV_NO_ACTION is not Spec ID Event03", () => {
  const spec02 = Buffer.concat([Buffer.from("Spec ID Event02\0", "latin1"), u32(0), Buffer.from([2, 1, 2, 1]), Buffer.from([0])]);
  const log = Buffer.concat([sha1Record(0, 3, spec02, Buffer.alloc(20)), sha1Record(4, 5, Buffer.from("Calling INT 19h"))]);
  const p = parseEventLog(log);
  assert.equal(p.format, "tpm12");
  assert.equal(p.specId?.signature, "Spec ID Event02");
  assert.equal(p.specId?.uintnSize, 4);
  assert.deepEqual(p.events[1].decoded, { kind: "text", encoding: "ascii", text: "Calling INT 19h" });
});

test("32-bit UINTN (uintnSize 1) sizes UEFI_VARIABLE_DATA fields", () => {
  const value = Buffer.from([1]);
  const data = Buffer.concat([EFI_GLOBAL, u32(10), u32(1), Buffer.from("SecureBoot", "utf16le"), value]);
  const p = parseEventLog(Buffer.concat([specId03([{ alg: ALG.sha256 }], { uintn: 1 }), agileRecord(7, 0x80000001, data, [ALG.sha256])]));
  const v = p.events[1].decoded;
  assert.ok(v.kind === "efi-variable" && v.name === "SecureBoot" && v.parsed.kind === "boolean" && v.parsed.value);
});

test("SP800-155 Event3, handoff tables, firmware blob2 decode", () => {
  const str = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, "latin1")]);
  const ev3 = Buffer.concat([
    Buffer.from("SP800-155 Event3", "latin1"),
    u32(0x157),
    Buffer.alloc(16, 0x11),
    str("Acme"),
    str("Model 1"),
    str("1.0"),
    str("Acme FW"),
    u32(0x157),
    str("2.3"),
    u32(1),
    u32(5),
    Buffer.from("https"),
    u32(0),
    u32(0),
  ]);
  const handoff2 = Buffer.concat([Buffer.from([4]), Buffer.from("SMB\0"), u64(1), Buffer.alloc(16, 0x22), u64(0xdead0000)]);
  const blob2 = Buffer.concat([Buffer.from([3]), Buffer.from("PEI"), u64(0xff000000), u64(0x10000)]);
  const p = parseEventLog(
    Buffer.concat([
      specId03([{ alg: ALG.sha256 }]),
      agileRecord(0, 3, ev3, [[ALG.sha256, Buffer.alloc(32)]]),
      agileRecord(1, 0x8000000b, handoff2, [ALG.sha256]),
      agileRecord(0, 0x8000000a, blob2, [ALG.sha256]),
    ]),
  );
  const e3 = p.events[1].decoded;
  assert.ok(e3.kind === "sp800-155");
  assert.equal(e3.signature, "SP800-155 Event3");
  assert.equal(e3.platformManufacturer, "Acme");
  assert.equal(e3.firmwareVersion, "2.3");
  assert.deepEqual(e3.rimLocator, { type: 1, data: Buffer.from("https") });
  assert.deepEqual(p.events[2].decoded, { kind: "handoff-tables", description: "SMB", tables: [{ guid: "11111111-1111-1111-1111-111111111111".replace(/1/g, "2"), address: "0xdead0000" }] });
  assert.deepEqual(p.events[3].decoded, { kind: "firmware-blob", description: "PEI", base: "0xff000000", length: 0x10000 });
});

test("trailing zero padding after the last event is tolerated and reported", () => {
  const base = fixture("four-banks-incl-sha512.bin");
  const p = parseEventLog(Buffer.concat([base, Buffer.alloc(4096)]));
  assert.equal(p.events.length, 2);
  assert.deepEqual(p.quirks.map((q) => [q.name, q.offset]), [["trailing-padding", base.length]]);
  assert.equal(p.size, base.length);
  const ff = parseEventLog(Buffer.concat([base, Buffer.alloc(5, 0xff)]));
  assert.equal(ff.quirks[0].name, "trailing-padding");
});

test("stable codes with offsets: empty, junk, truncated, bad sizes", () => {
  assert.deepEqual(parseCode(Buffer.alloc(0)), { code: "ERR_PARSE_EVENTLOG", reason: "empty", offset: 0 });
  assert.deepEqual(parseCode(Buffer.from("this is not an event log, just some text\n".repeat(4))).code, "ERR_PARSE_EVENTLOG");
  const rhel = fixture("rhel8-gce-uefi.bin");
  const cut = parseCode(rhel.subarray(0, 1000));
  assert.equal(cut.code, "ERR_PARSE_EVENTLOG");
  assert.equal(cut.reason, "truncated");
  assert.ok(typeof cut.offset === "number" && cut.offset > 0 && cut.offset <= 1000);
  // digest algorithm not listed in the Spec ID event
  const bad = Buffer.concat([specId03([{ alg: ALG.sha256 }]), agileRecord(0, 8, Buffer.from("x"), [ALG.sha1])]);
  assert.deepEqual(parseCode(bad).reason, "bad-value");
  // a known algorithm with the wrong size in the Spec ID event
  assert.deepEqual(parseCode(specId03([{ alg: ALG.sha256, size: 20 }])).reason, "bad-value");
  // eventSize beyond the per-event cap
  const huge = Buffer.concat([u32(0), u32(8), Buffer.alloc(20), u32(0x7fffffff)]);
  assert.deepEqual(parseCode(huge), { code: "ERR_PARSE_EVENTLOG", reason: "too-large", offset: 28 });
  // the same digest algorithm twice in one event
  const dup = Buffer.concat([specId03([{ alg: ALG.sha1 }, { alg: ALG.sha256 }]), agileRecord(0, 8, Buffer.from("x"), [ALG.sha1, ALG.sha1])]);
  assert.equal(parseCode(dup).reason, "bad-value");
});

test("parse errors name the record", () => {
  const log = Buffer.concat([specId03([{ alg: ALG.sha256 }]), agileRecord(0, 8, Buffer.from("ok"), [ALG.sha256]), agileRecord(0, 8, Buffer.from("bad"), [[ALG.sha1, h(ALG.sha1, "bad")]])]);
  try {
    parseEventLog(log);
    assert.fail("expected failure");
  } catch (e) {
    assert.ok(isTpmTrustError(e));
    assert.equal(e.details?.record, 2);
  }
});

test("variable data of a Boot#### is decoded without trusting its lengths", () => {
  const data = variableData(EFI_GLOBAL, "Boot0001", Buffer.from([1, 0, 0, 0, 0xff, 0xff]));
  const p: EventLog = parseEventLog(Buffer.concat([specId03([{ alg: ALG.sha256 }]), agileRecord(1, 0x80000002, data, [ALG.sha256])]));
  const v = p.events[1].decoded;
  assert.ok(v.kind === "efi-variable" && v.parsed.kind === "raw" && v.valueError);
});
