import { isTpmTrustError } from "../../errors.js";
import { asciiText, eventLogError, LeCursor, utf16Text } from "./bytes.js";
import { EV } from "./constants.js";
import { decodeFirmwareBlob, decodeGpt, decodeHandoffTables, decodeImageLoad, decodeVariable } from "./efi.js";
import { decodeSipaEvent } from "./sipa.js";
import type { EventData, Sp800155Event, TextEvent } from "./types.js";

type Decoder = (c: LeCursor, ctx: { pcr: number; uintn: 4 | 8 }) => EventData;

function text(c: LeCursor): EventData {
  return textOf(c.buf) ?? { kind: "raw" };
}

function textOf(b: Buffer): TextEvent | undefined {
  const utf16 = b.length >= 4 && b[1] === 0 ? utf16Text(b) : undefined;
  if (utf16 !== undefined) return { kind: "text", encoding: "utf16le", text: utf16 };
  const ascii = asciiText(b);
  return ascii === undefined ? undefined : { kind: "text", encoding: "ascii", text: ascii };
}

/** EV_POST_CODE (PFP §10.4.1): a UEFI_PLATFORM_FIRMWARE_BLOB or a string such as "ACPI DATA". */
const postCode: Decoder = (c) => (c.buf.length === 16 ? decodeFirmwareBlob(c, false) : text(c));

/** EV_POST_CODE2: a UEFI_PLATFORM_FIRMWARE_BLOB2 or a string. */
const postCode2: Decoder = (c) => textOf(c.buf) ?? decodeFirmwareBlob(c, true);

const separator: Decoder = (c) => {
  if (c.buf.length !== 4) return text(c);
  const value = c.u32("separator");
  return { kind: "separator", value, error: value === 0xffffffff };
};

/**
 * EV_NO_ACTION (PFP §10.4.5): a 16-byte signature names the structure. Windows writes SIPA
 * trust-point data at PCR 0xFFFFFFFF without a signature.
 */
const noAction: Decoder = (c, ctx) => {
  const sig = c.buf.length >= 16 ? c.buf.toString("latin1", 0, 16) : "";
  if (sig.startsWith("Spec ID Event")) return { kind: "no-action", signature: sig.replace(/\0+$/, "") }; // the parser decodes the first one
  if (sig === "StartupLocality\0") {
    c.bytes(16, "Signature");
    const locality = c.u8("StartupLocality");
    if (c.remaining) throw eventLogError("bad-value", "bytes after StartupLocality", c.offset, { field: "StartupLocality" });
    return { kind: "startup-locality", locality };
  }
  if (sig.startsWith("SP800-155 Event")) return sp800155(c);
  if (ctx.pcr === 0xffffffff && c.buf.length >= 8) return decodeSipaEvent(c);
  const printable = /^[\x20-\x7e]+\0*$/.test(sig);
  return { kind: "no-action", ...(printable ? { signature: sig.replace(/\0+$/, "") } : {}) };
};

/** TCG_Sp800_155_PlatformId_Event2/3 (PFP §10.4.5.2); the first version has only the signature defined here. */
function sp800155(c: LeCursor): Sp800155Event {
  const signature = c.bytes(16, "Signature").toString("latin1").replace(/\0+$/, "");
  const out: Sp800155Event = { kind: "sp800-155", signature };
  if (signature !== "SP800-155 Event2" && signature !== "SP800-155 Event3") return out;
  const str = (what: string) => c.bytes(c.u8(`${what}Size`), what).toString("latin1").replace(/\0+$/, "");
  out.vendorId = c.u32("VendorId");
  out.referenceManifestGuid = c.guid("ReferenceManifestGuid");
  out.platformManufacturer = str("PlatformManufacturerStr");
  out.platformModel = str("PlatformModel");
  out.platformVersion = str("PlatformVersion");
  out.firmwareManufacturer = str("FirmwareManufacturerStr");
  out.firmwareManufacturerId = c.u32("FirmwareManufacturerId");
  out.firmwareVersion = str("FirmwareVersion");
  if (signature === "SP800-155 Event3") {
    const locator = (what: string) => ({ type: c.u32(`${what}Type`), data: c.bytes(c.u32(`${what}Length`), what) });
    out.rimLocator = locator("RimLocator");
    out.platformCertLocator = locator("PlatformCertLocator");
  }
  if (c.remaining) throw eventLogError("bad-value", `${c.remaining} bytes after ${signature}`, c.offset, { field: signature });
  return out;
}

const DECODERS = new Map<number, Decoder>([
  [EV.NO_ACTION, noAction],
  [EV.POST_CODE, postCode],
  [EV.POST_CODE2, postCode2],
  [EV.SEPARATOR, separator],
  [EV.ACTION, text],
  [EV.S_CRTM_CONTENTS, text],
  [EV.S_CRTM_VERSION, text],
  [EV.CPU_MICROCODE, text],
  [EV.IPL, text],
  [EV.NONHOST_INFO, text],
  [EV.OMIT_BOOT_DEVICE_EVENTS, text],
  [EV.EFI_ACTION, text],
  [EV.EFI_HCRTM_EVENT, text],
  [EV.EVENT_TAG, decodeSipaEvent],
  [EV.COMPACT_HASH, (c) => ({ kind: "compact-hash", ...(c.buf.length === 4 ? { value: c.buf.readUInt32LE(0) } : {}) })],
  [EV.EFI_VARIABLE_DRIVER_CONFIG, (c, x) => decodeVariable(c, x.uintn, false)],
  [EV.EFI_VARIABLE_BOOT, (c, x) => decodeVariable(c, x.uintn, false)],
  [EV.EFI_VARIABLE_BOOT2, (c, x) => decodeVariable(c, x.uintn, false)],
  [EV.EFI_VARIABLE_AUTHORITY, (c, x) => decodeVariable(c, x.uintn, true)],
  [EV.EFI_SPDM_DEVICE_POLICY, (c, x) => decodeVariable(c, x.uintn, false)],
  [EV.EFI_SPDM_DEVICE_AUTHORITY, (c, x) => decodeVariable(c, x.uintn, true)],
  [EV.EFI_BOOT_SERVICES_APPLICATION, (c, x) => decodeImageLoad(c, x.uintn)],
  [EV.EFI_BOOT_SERVICES_DRIVER, (c, x) => decodeImageLoad(c, x.uintn)],
  [EV.EFI_RUNTIME_SERVICES_DRIVER, (c, x) => decodeImageLoad(c, x.uintn)],
  [EV.EFI_GPT_EVENT, (c, x) => decodeGpt(c, x.uintn)],
  [EV.EFI_GPT_EVENT2, (c, x) => decodeGpt(c, x.uintn)],
  [EV.EFI_PLATFORM_FIRMWARE_BLOB, (c) => decodeFirmwareBlob(c, false)],
  [EV.EFI_PLATFORM_FIRMWARE_BLOB2, (c) => decodeFirmwareBlob(c, true)],
  [EV.EFI_HANDOFF_TABLES, (c, x) => decodeHandoffTables(c, false, x.uintn)],
  [EV.EFI_HANDOFF_TABLES2, (c, x) => decodeHandoffTables(c, true, x.uintn)],
]);

/**
 * Decodes event data by type. Data is not trusted for replay (digests are), so a malformed body is
 * kept as "undecodable" with where and why, and never fails the log.
 */
export function decodeEventData(type: number, pcr: number, data: Buffer, dataOffset: number, uintn: 4 | 8): EventData {
  const decoder = DECODERS.get(type);
  if (!decoder || data.length === 0) return { kind: "raw" };
  try {
    return decoder(new LeCursor(data, dataOffset), { pcr, uintn });
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { kind: "undecodable", error: e.message, offset: Number(e.details?.offset ?? dataOffset) };
  }
}
