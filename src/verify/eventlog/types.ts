/** PCR values per bank: bank name ("sha1", "sha256", …) -> PCR index -> value. Quotes and replays use it alike. */
export type PcrValues = Record<string, Record<number, Buffer>>;

export type EventLogFormat = "crypto-agile" | "sha1" | "tpm12";

export interface SpecIdAlgorithm {
  algId: number;
  /** Bank name ("sha256"), or "0x00ab" for an algorithm tpmtrust does not know. */
  bank: string;
  digestSize: number;
}

/** A quirk of the log's container (not of its events) that the parser tolerated, reported, never silent. */
export interface ParseQuirk {
  name: "trailing-padding" | "spec-id-nonzero-digest";
  offset: number;
  detail: string;
}

export interface TcgEvent {
  /** Record number in the log, 0-based (the Spec ID event is record 0 of a crypto-agile log). */
  index: number;
  /** Byte offset of the record in the log. */
  offset: number;
  pcr: number;
  type: number;
  typeName: string;
  /** Digest per bank name. */
  digests: Record<string, Buffer>;
  /** The event data (a view into the log bytes). */
  data: Buffer;
  /** The data decoded by event type (a parsed log's events decode it on first read). */
  readonly decoded: EventData;
}

export interface EventLog {
  format: EventLogFormat;
  /** Banks the log carries (crypto-agile: from the Spec ID event; otherwise sha1). */
  algorithms: SpecIdAlgorithm[];
  /** The Spec ID event's contents, when the log has one. */
  specId?: SpecIdEvent;
  events: TcgEvent[];
  quirks: ParseQuirk[];
  /** Bytes parsed (excludes tolerated trailing padding). */
  size: number;
}

// ---- decoded event data -------------------------------------------------------------------------

export interface SpecIdEvent {
  kind: "spec-id";
  signature: string;
  platformClass: number;
  specVersion: string;
  specErrata: number;
  uintnSize: 4 | 8;
  algorithms: SpecIdAlgorithm[];
  vendorInfo: Buffer;
}

export interface StartupLocalityEvent {
  kind: "startup-locality";
  locality: number;
}

export interface Sp800155Event {
  kind: "sp800-155";
  signature: string;
  vendorId?: number;
  referenceManifestGuid?: string;
  platformManufacturer?: string;
  platformModel?: string;
  platformVersion?: string;
  firmwareManufacturer?: string;
  firmwareManufacturerId?: number;
  firmwareVersion?: string;
  rimLocator?: { type: number; data: Buffer };
  platformCertLocator?: { type: number; data: Buffer };
}

/** An EV_NO_ACTION event with a 16-byte signature tpmtrust does not decode further (e.g. NvIndexInstance). */
export interface NoActionEvent {
  kind: "no-action";
  signature?: string;
}

export interface TextEvent {
  kind: "text";
  encoding: "ascii" | "utf16le";
  text: string;
}

export interface SeparatorEvent {
  kind: "separator";
  value: number;
  /** 0xFFFFFFFF marks a firmware error (PFP §10.4.1); Windows writes "WBCL" (0x4C434257) into PCRs 12–14. */
  error: boolean;
}

export interface SignatureEntry {
  owner: string;
  data: Buffer;
}

export interface SignatureList {
  type: string;
  typeName: string;
  header: Buffer;
  /** how many signatures the list holds */
  count: number;
  /** decoded on first read */
  signatures: SignatureEntry[];
}

export interface LoadOption {
  attributes: number;
  active: boolean;
  description: string;
  devicePath: DevicePath;
  optionalData: Buffer;
}

export type VariableValue =
  | { kind: "boolean"; value: boolean; raw: number }
  | { kind: "signature-lists"; lists: SignatureList[] }
  | { kind: "signature-data"; owner?: string; data: Buffer }
  | { kind: "load-option"; option: LoadOption }
  | { kind: "boot-order"; order: number[] }
  | { kind: "raw" };

export interface EfiVariableEvent {
  kind: "efi-variable";
  guid: string;
  name: string;
  value: Buffer;
  parsed: VariableValue;
  /** Set when the variable's content could not be parsed as its well-known type. */
  valueError?: string;
}

export interface DevicePathNode {
  type: number;
  subType: number;
  text: string;
}

export interface DevicePath {
  raw: Buffer;
  /** UEFI-style text form, best effort. */
  text: string;
  nodes: DevicePathNode[];
  /** Joined FilePath media nodes, e.g. "\\EFI\\redhat\\shimx64.efi". */
  filePath?: string;
  error?: string;
}

export interface ImageLoadEvent {
  kind: "image-load";
  imageBase: string;
  imageLength: number;
  linkTimeAddress: string;
  devicePath: DevicePath;
  /** Bytes after the device path (shim leaves 8). */
  trailing?: number;
}

export interface GptPartition {
  typeGuid: string;
  uniqueGuid: string;
  startingLba: number;
  endingLba: number;
  attributes: string;
  name: string;
}

export interface GptEvent {
  kind: "gpt";
  diskGuid: string;
  revision: number;
  partitions: GptPartition[];
}

export interface FirmwareBlobEvent {
  kind: "firmware-blob";
  description?: string;
  base: string;
  length: number;
}

export interface HandoffTablesEvent {
  kind: "handoff-tables";
  description?: string;
  tables: { guid: string; address: string }[];
}

export interface SipaItem {
  id: number;
  name: string;
  data: Buffer;
  children?: SipaItem[];
}

export interface SipaEvent {
  kind: "sipa";
  /** Built on first access (JSON output includes it). */
  readonly items: SipaItem[];
}

export interface CompactHashEvent {
  kind: "compact-hash";
  /** The data as a little-endian u32 when it is 4 bytes (Windows writes such values in PCR 11). */
  value?: number;
}

export interface RawEvent {
  kind: "raw";
}

/** The data does not have the layout its event type requires: kept raw, with where and why. */
export interface UndecodableEvent {
  kind: "undecodable";
  error: string;
  offset: number;
}

export type EventData =
  | SpecIdEvent
  | StartupLocalityEvent
  | Sp800155Event
  | NoActionEvent
  | TextEvent
  | SeparatorEvent
  | EfiVariableEvent
  | ImageLoadEvent
  | GptEvent
  | FirmwareBlobEvent
  | HandoffTablesEvent
  | SipaEvent
  | CompactHashEvent
  | RawEvent
  | UndecodableEvent;
