import { eventLogError, LeCursor, utf16z } from "./bytes.js";
import { GUID, SIGNATURE_TYPE_NAMES } from "./constants.js";
import { decodeDevicePath } from "./devicepath.js";
import type {
  EfiVariableEvent,
  FirmwareBlobEvent,
  GptEvent,
  GptPartition,
  HandoffTablesEvent,
  ImageLoadEvent,
  SignatureEntry,
  SignatureList,
  VariableValue,
} from "./types.js";

/** UEFI_VARIABLE_DATA (PFP §10.3.6): VariableName GUID, u64 name length (chars), u64 data length, name, data. */
export function decodeVariable(c: LeCursor, uintn: 4 | 8, authority: boolean): EfiVariableEvent {
  const guid = c.guid("VariableName");
  const nameLen = c.uintn(uintn, "UnicodeNameLength");
  const dataLen = c.uintn(uintn, "VariableDataLength");
  if (nameLen * 2 > c.remaining) throw eventLogError("truncated", `UnicodeNameLength ${nameLen} exceeds the event`, c.offset, { field: "UnicodeNameLength" });
  const name = c.bytes(nameLen * 2, "UnicodeName").toString("utf16le").replace(/\0+$/, "");
  const value = c.bytes(dataLen, "VariableData");
  if (c.remaining) throw eventLogError("bad-value", `${c.remaining} bytes after VariableData`, c.offset, { field: "VariableData" });
  let parsed: VariableValue = { kind: "raw" };
  let valueError: string | undefined;
  try {
    parsed = authority ? signatureData(value) : variableValue(guid, name, value);
  } catch (e) {
    valueError = (e as Error).message;
  }
  return { kind: "efi-variable", guid, name, value, parsed, ...(valueError ? { valueError } : {}) };
}

const BOOLEAN_VARS = new Set(["SecureBoot", "SetupMode", "AuditMode", "DeployedMode"]);
const SIGNATURE_DBS = new Set(["PK", "KEK", "db", "dbx", "dbt", "dbr", "MokList", "MokListX", "MokListRT", "MokListXRT"]);

function variableValue(guid: string, name: string, value: Buffer): VariableValue {
  if (guid === GUID.EFI_GLOBAL_VARIABLE && BOOLEAN_VARS.has(name) && value.length === 1) return { kind: "boolean", value: value[0] === 1, raw: value[0] };
  if (SIGNATURE_DBS.has(name)) return { kind: "signature-lists", lists: signatureLists(new LeCursor(value)) };
  if (guid === GUID.EFI_GLOBAL_VARIABLE && /^(Boot|Driver|SysPrep)Order$/.test(name)) {
    if (value.length % 2) throw new Error(`${name} has odd length ${value.length}`);
    const order: number[] = [];
    for (let i = 0; i < value.length; i += 2) order.push(value.readUInt16LE(i));
    return { kind: "boot-order", order };
  }
  if (guid === GUID.EFI_GLOBAL_VARIABLE && /^(Boot|Driver|SysPrep)[0-9A-F]{4}$/.test(name)) return { kind: "load-option", option: loadOption(new LeCursor(value)) };
  return { kind: "raw" };
}

/** EFI_SIGNATURE_LIST array (UEFI §32.4.1): type GUID, u32 list size, u32 header size, u32 signature size, header, signatures. */
function signatureLists(c: LeCursor): SignatureList[] {
  const lists: SignatureList[] = [];
  while (c.remaining > 0) {
    const at = c.offset;
    const type = c.guid("SignatureType");
    const listSize = c.u32("SignatureListSize");
    const headerSize = c.u32("SignatureHeaderSize");
    const sigSize = c.u32("SignatureSize");
    if (listSize < 28 || listSize - 28 > c.remaining) throw eventLogError("bad-value", `SignatureListSize ${listSize} invalid`, at, { field: "SignatureListSize" });
    const body = c.sub(listSize - 28, "signature list");
    const header = body.bytes(headerSize, "SignatureHeader");
    if (sigSize < 16 || body.remaining % sigSize) throw eventLogError("bad-value", `SignatureSize ${sigSize} does not divide the list`, at, { field: "SignatureSize" });
    lists.push(new LazySignatureList(type, header, body, sigSize));
  }
  return lists;
}

/**
 * dbx holds hundreds of entries that only a reader of this list needs one by one: they are decoded
 * on the first read of `signatures` (the sizes are checked when the list is read).
 */
class LazySignatureList implements SignatureList {
  readonly typeName: string;
  readonly count: number;
  #signatures: SignatureEntry[] | undefined;
  readonly #body: LeCursor;
  readonly #sigSize: number;
  constructor(
    readonly type: string,
    readonly header: Buffer,
    body: LeCursor,
    sigSize: number,
  ) {
    this.typeName = SIGNATURE_TYPE_NAMES[type] ?? "unknown";
    this.count = body.remaining / sigSize;
    this.#body = body;
    this.#sigSize = sigSize;
  }
  get signatures(): SignatureEntry[] {
    return (this.#signatures ??= signatureEntries(this.#body, this.#sigSize));
  }
  toJSON() {
    return { type: this.type, typeName: this.typeName, header: this.header, count: this.count, signatures: this.signatures };
  }
}

/** EFI_SIGNATURE_DATA entries (owner GUID + data) of a list whose size is a multiple of `sigSize` (≥ 16). */
function signatureEntries(body: LeCursor, sigSize: number): SignatureEntry[] {
  const signatures: SignatureEntry[] = [];
  // nearly all from one owner: format each distinct owner GUID once
  let owner = "";
  let ownerAt = -1;
  while (body.remaining > 0) {
    if (ownerAt < 0 || !sameBytes(body.buf, ownerAt, body.pos, 16)) {
      ownerAt = body.pos;
      owner = body.guid("SignatureOwner");
    } else body.pos += 16;
    signatures.push({ owner, data: body.bytes(sigSize - 16, "SignatureData") });
  }
  return signatures;
}

function sameBytes(b: Buffer, i: number, j: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (b[i + k] !== b[j + k]) return false;
  return true;
}

/**
 * EV_EFI_VARIABLE_AUTHORITY data is one EFI_SIGNATURE_DATA (owner GUID + certificate, PFP §10.4.6).
 * shim logs its built-in certificate without an owner; a DER SEQUENCE at byte 0 marks that case.
 */
function signatureData(value: Buffer): VariableValue {
  if (value.length >= 4 && value[0] === 0x30 && value[1] === 0x82) return { kind: "signature-data", data: value };
  if (value.length > 16) return { kind: "signature-data", owner: new LeCursor(value).guid("SignatureOwner"), data: value.subarray(16) };
  return { kind: "raw" };
}

/** EFI_LOAD_OPTION (UEFI §3.1.3): u32 attributes, u16 FilePathListLength, NUL-terminated CHAR16 description, paths, optional data. */
function loadOption(c: LeCursor) {
  const attributes = c.u32("Attributes");
  const pathLen = c.u16("FilePathListLength");
  let end = c.pos;
  while (end + 1 < c.buf.length && (c.buf[end] || c.buf[end + 1])) end += 2;
  if (end + 1 >= c.buf.length) throw new Error("load option description is not terminated");
  const description = c.buf.toString("utf16le", c.pos, end);
  c.pos = end + 2;
  const devicePath = decodeDevicePath(c.bytes(pathLen, "FilePathList"));
  return { attributes, active: (attributes & 1) === 1, description, devicePath, optionalData: c.rest() };
}

/** UEFI_IMAGE_LOAD_EVENT (PFP §10.3.2): u64 location, u64 length, u64 link-time address, u64 device path length, device path. */
export function decodeImageLoad(c: LeCursor, uintn: 4 | 8): ImageLoadEvent {
  const imageBase = c.address("ImageLocationInMemory");
  const imageLength = c.uintn(uintn, "ImageLengthInMemory");
  const linkTimeAddress = uintn === 8 ? c.address("ImageLinkTimeAddress") : `0x${c.u32("ImageLinkTimeAddress").toString(16)}`;
  const dpLen = c.uintn(uintn, "LengthOfDevicePath");
  const devicePath = decodeDevicePath(c.bytes(dpLen, "DevicePath"));
  // shim sizes the event with the C struct's DevicePath[1] member: 8 bytes of slack follow the path
  const trailing = c.remaining;
  return { kind: "image-load", imageBase, imageLength, linkTimeAddress, devicePath, ...(trailing ? { trailing } : {}) };
}

/**
 * UEFI_GPT_DATA (PFP §10.3.3): the 92-byte EFI_PARTITION_TABLE_HEADER (UEFI §5.3.2), u64 partition
 * count, then that many entries of the header's SizeOfPartitionEntry (at least the 128-byte EFI_PARTITION_ENTRY).
 */
export function decodeGpt(c: LeCursor, uintn: 4 | 8): GptEvent {
  const hdrAt = c.offset;
  const signature = c.bytes(8, "Signature").toString("latin1");
  if (signature !== "EFI PART") throw eventLogError("bad-value", `GPT header signature "${signature}"`, hdrAt, { field: "Signature" });
  const revision = c.u32("Revision");
  c.bytes(44, "GPT header LBAs"); // HeaderSize, HeaderCRC32, Reserved, MyLBA, AlternateLBA, FirstUsableLBA, LastUsableLBA
  const diskGuid = c.guid("DiskGUID");
  c.bytes(12, "PartitionEntryLBA, NumberOfPartitionEntries");
  const entrySize = c.u32("SizeOfPartitionEntry");
  c.u32("PartitionEntryArrayCRC32");
  const count = c.uintn(uintn, "NumberOfPartitions");
  if (entrySize < 128) throw eventLogError("bad-value", `SizeOfPartitionEntry ${entrySize} below 128`, hdrAt + 84, { field: "SizeOfPartitionEntry" });
  if (count * entrySize !== c.remaining) throw eventLogError("bad-value", `${count} partitions of ${entrySize} bytes do not fill ${c.remaining} bytes`, c.offset, { field: "NumberOfPartitions" });
  const partitions: GptPartition[] = [];
  for (let i = 0; i < count; i++) {
    const e = c.sub(entrySize, "EFI_PARTITION_ENTRY");
    partitions.push({
      typeGuid: e.guid("PartitionTypeGUID"),
      uniqueGuid: e.guid("UniquePartitionGUID"),
      startingLba: e.u64("StartingLBA"),
      endingLba: e.u64("EndingLBA"),
      attributes: e.address("Attributes"),
      name: utf16z(e.bytes(72, "PartitionName")),
    });
  }
  return { kind: "gpt", diskGuid, revision, partitions };
}

/** UEFI_PLATFORM_FIRMWARE_BLOB (PFP §10.3.4) and BLOB2 (§10.3.5, u8-prefixed description first). */
export function decodeFirmwareBlob(c: LeCursor, v2: boolean): FirmwareBlobEvent {
  const description = v2 ? c.bytes(c.u8("BlobDescriptionSize"), "BlobDescription").toString("latin1").replace(/\0+$/, "") : undefined;
  const base = c.address("BlobBase");
  const length = c.u64("BlobLength");
  if (c.remaining) throw eventLogError("bad-value", `${c.remaining} bytes after BlobLength`, c.offset, { field: "BlobLength" });
  return { kind: "firmware-blob", ...(description !== undefined ? { description } : {}), base, length };
}

/** UEFI_HANDOFF_TABLE_POINTERS (PFP §10.3.7) and …2 (u8-prefixed description first): u64 count, {GUID, u64 pointer}. */
export function decodeHandoffTables(c: LeCursor, v2: boolean, uintn: 4 | 8): HandoffTablesEvent {
  const description = v2 ? c.bytes(c.u8("TableDescriptionSize"), "TableDescription").toString("latin1").replace(/\0+$/, "") : undefined;
  const count = c.uintn(uintn, "NumberOfTables");
  if (count * (16 + uintn) !== c.remaining) throw eventLogError("bad-value", `NumberOfTables ${count} does not match ${c.remaining} bytes`, c.offset, { field: "NumberOfTables" });
  const tables = [];
  for (let i = 0; i < count; i++) {
    const guid = c.guid("VendorGuid");
    const address = uintn === 8 ? c.address("VendorTable") : `0x${c.u32("VendorTable").toString(16)}`;
    tables.push({ guid, address });
  }
  return { kind: "handoff-tables", ...(description !== undefined ? { description } : {}), tables };
}

