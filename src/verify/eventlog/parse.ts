import { HASH_ALGS } from "../../tpm/constants.js";
import { eventLogError, LeCursor } from "./bytes.js";
import { EV, eventTypeName, LIMITS } from "./constants.js";
import { decodeEventData } from "./decode.js";
import type { EventData, EventLog, EventLogFormat, ParseQuirk, SpecIdAlgorithm, SpecIdEvent, TcgEvent } from "./types.js";

const SHA1: SpecIdAlgorithm = { algId: 0x0004, bank: "sha1", digestSize: 20 };

export function bankName(algId: number): string {
  return HASH_ALGS[algId]?.name ?? `0x${algId.toString(16).padStart(4, "0")}`;
}

/**
 * Parses a TCG event log (PFP §10.2): SHA1-format TCG_PCR_EVENT records, or — when the first record
 * is the EV_NO_ACTION "Spec ID Event03" — crypto-agile TCG_PCR_EVENT2 records sized by its algorithm
 * list. Returns every event, unverified: only `verifyEventLog` turns events into facts.
 * Every structural fault is ERR_PARSE_EVENTLOG with details.reason and the byte offset.
 */
export function parseEventLog(bytes: Uint8Array): EventLog {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length === 0) throw eventLogError("empty", "the event log is empty", 0);
  if (buf.length > LIMITS.logBytes) throw eventLogError("too-large", `the event log has ${buf.length} bytes, more than ${LIMITS.logBytes}`, 0);
  const c = new LeCursor(buf);
  const quirks: ParseQuirk[] = [];
  const first = readSha1Record(c, 0, { bytes: buf, algorithms: [SHA1], uintn: 8 });
  let format: EventLogFormat = "sha1";
  let algorithms = [SHA1];
  let specId: SpecIdEvent | undefined;
  let uintn: 4 | 8 = 8;
  const dataAt = first.offset + 32;
  if (first.type === EV.NO_ACTION) {
    const sig = first.data.toString("latin1", 0, 16);
    if (sig === "Spec ID Event03\0") {
      specId = decodeSpecId(new LeCursor(first.data, dataAt), true);
      format = "crypto-agile";
      algorithms = specId.algorithms;
    } else {
      // PFP §10.4.5.1: a first EV_NO_ACTION other than Spec ID Event03 means a TPM 1.2-format log.
      format = "tpm12";
      if (sig === "Spec ID Event02\0") specId = decodeSpecId(new LeCursor(first.data, dataAt), false);
    }
    if (specId) {
      uintn = specId.uintnSize;
      first.decodedAs(specId);
    }
    if (specId && first.digests.sha1.some((b) => b !== 0)) quirks.push({ name: "spec-id-nonzero-digest", offset: first.offset + 8, detail: "the Spec ID event's digest is not all zero" });
  }
  const events: TcgEvent[] = [first];
  const layout: LogLayout = { bytes: buf, algorithms, uintn };
  const sizes = new Map(algorithms.map((a, i) => [a.algId, i]));
  const padding = new PaddingScanner(buf);
  while (c.remaining > 0) {
    const pad = padding.paddingAt(c.pos);
    if (pad) {
      quirks.push({ name: "trailing-padding", offset: c.pos, detail: `${c.remaining} trailing bytes of 0x${pad} after the last event` });
      break;
    }
    if (events.length >= LIMITS.events) throw eventLogError("too-large", `more than ${LIMITS.events} events`, c.offset, { record: events.length });
    events.push(format === "crypto-agile" ? readAgileRecord(c, events.length, layout, sizes) : readSha1Record(c, events.length, layout));
  }
  return { format, algorithms, ...(specId ? { specId } : {}), events, quirks, size: c.pos };
}

/** What the events of one log share: its bytes, the banks its records carry, its UINTN size. */
interface LogLayout {
  bytes: Buffer;
  algorithms: SpecIdAlgorithm[];
  uintn: 4 | 8;
}

/**
 * A parsed record: offsets into the log, checked when it was read. The views of its digests and
 * data are made on first read, and its data is decoded on the first read of `decoded`: replay reads
 * digests straight from the log, and interpretation decodes only the event types it takes facts from.
 * Decoding never throws (a malformed body decodes as "undecodable"), so decoding later changes no outcome.
 */
export class LogEvent implements TcgEvent {
  readonly typeName: string;
  readonly #log: LogLayout;
  /** where each of the log's algorithms has its digest (-1: not in this record) */
  readonly #digestAt: number[];
  readonly #dataAt: number;
  readonly #dataSize: number;
  #digests: Record<string, Buffer> | undefined;
  #data: Buffer | undefined;
  #decoded: EventData | undefined;

  constructor(
    readonly index: number,
    readonly offset: number,
    readonly pcr: number,
    readonly type: number,
    log: LogLayout,
    digestAt: number[],
    dataAt: number,
    dataSize: number,
  ) {
    this.typeName = eventTypeName(type);
    this.#log = log;
    this.#digestAt = digestAt;
    this.#dataAt = dataAt;
    this.#dataSize = dataSize;
  }

  /** The log's bytes, which hold this record's digests at `digestAt`. */
  get bytes(): Buffer {
    return this.#log.bytes;
  }

  /** Where the record's digest of `bank` starts in `bytes`, or -1. */
  digestAt(bank: string): number {
    const algs = this.#log.algorithms;
    for (let i = 0; i < algs.length; i++) if (algs[i].bank === bank) return this.#digestAt[i];
    return -1;
  }

  get digests(): Record<string, Buffer> {
    if (!this.#digests) {
      // in the record's order: the next digest is the present one at the lowest offset after the last
      const { bytes, algorithms } = this.#log;
      const at = this.#digestAt;
      const digests: Record<string, Buffer> = {};
      for (let last = -1; ; ) {
        let k = -1;
        for (let i = 0; i < at.length; i++) if (at[i] > last && (k < 0 || at[i] < at[k])) k = i;
        if (k < 0) break;
        last = at[k];
        digests[algorithms[k].bank] = bytes.subarray(last, last + algorithms[k].digestSize);
      }
      this.#digests = digests;
    }
    return this.#digests;
  }

  get data(): Buffer {
    return (this.#data ??= this.#log.bytes.subarray(this.#dataAt, this.#dataAt + this.#dataSize));
  }

  get decoded(): EventData {
    return (this.#decoded ??= decodeEventData(this.type, this.pcr, this.data, this.#dataAt, this.#log.uintn));
  }

  /** The Spec ID event is decoded by the parser, which needs it to read the rest. */
  decodedAs(d: EventData): void {
    this.#decoded = d;
  }
}

/** An event with only some of its digests (those of verified banks); its decoding is the original's. */
class DigestSubset implements TcgEvent {
  readonly index: number;
  readonly offset: number;
  readonly pcr: number;
  readonly type: number;
  readonly typeName: string;
  readonly data: Buffer;
  readonly #of: TcgEvent;
  constructor(
    of: TcgEvent,
    readonly digests: Record<string, Buffer>,
  ) {
    this.index = of.index;
    this.offset = of.offset;
    this.pcr = of.pcr;
    this.type = of.type;
    this.typeName = of.typeName;
    this.data = of.data;
    this.#of = of;
  }
  get decoded(): EventData {
    return this.#of.decoded;
  }
}

/** The same event with only `digests` (a parsed event's data stays decoded once, when first read). */
export function withDigests(ev: TcgEvent, digests: Record<string, Buffer>): TcgEvent {
  return new DigestSubset(ev, digests);
}

/** u32 eventSize, event: the record completed. */
function withData(c: LeCursor, index: number, offset: number, pcr: number, type: number, log: LogLayout, digestAt: number[]): LogEvent {
  const at = c.offset;
  const size = c.u32("eventSize");
  if (size > LIMITS.eventDataBytes) throw eventLogError("too-large", `eventSize ${size} exceeds ${LIMITS.eventDataBytes}`, at, { record: index, field: "eventSize" });
  c.need(size, "event data");
  const dataAt = c.pos;
  c.pos += size;
  return new LogEvent(index, offset, pcr, type, log, digestAt, dataAt, size);
}

/** TCG_PCR_EVENT (PFP §10.2.1): u32 pcrIndex, u32 eventType, digest[20], u32 eventSize, event. */
function readSha1Record(c: LeCursor, index: number, log: LogLayout): LogEvent {
  const offset = c.offset;
  try {
    const pcr = c.u32("pcrIndex");
    const type = c.u32("eventType");
    c.need(20, "digest");
    const at = c.pos;
    c.pos += 20;
    return withData(c, index, offset, pcr, type, log, [at]);
  } catch (e) {
    throw withRecord(e, index, offset);
  }
}

/** TCG_PCR_EVENT2 (PFP §10.2.2): u32 pcrIndex, u32 eventType, TPML_DIGEST_VALUES (u32 count, {u16 alg, digest}), u32 eventSize, event. */
function readAgileRecord(c: LeCursor, index: number, log: LogLayout, algIndex: Map<number, number>): LogEvent {
  const offset = c.offset;
  try {
    const pcr = c.u32("pcrIndex");
    const type = c.u32("eventType");
    const countAt = c.offset;
    const count = c.u32("digests.count");
    const algs = log.algorithms;
    if (count > algs.length) throw eventLogError("bad-value", `digests.count ${count} exceeds the ${algs.length} algorithms of the Spec ID event`, countAt, { field: "digests.count" });
    const digestAt: number[] = algs.map(() => -1);
    for (let i = 0; i < count; i++) {
      const algAt = c.offset;
      const algId = c.u16("digests.hashAlg");
      const k = algIndex.get(algId);
      if (k === undefined) throw eventLogError("bad-value", `digest algorithm 0x${algId.toString(16)} is not in the Spec ID event`, algAt, { field: "digests.hashAlg" });
      const alg = algs[k];
      if (digestAt[k] >= 0) throw eventLogError("bad-value", `digest algorithm ${alg.bank} appears twice`, algAt, { field: "digests.hashAlg" });
      c.need(alg.digestSize, `${alg.bank} digest`);
      digestAt[k] = c.pos;
      c.pos += alg.digestSize;
    }
    return withData(c, index, offset, pcr, type, log, digestAt);
  } catch (e) {
    throw withRecord(e, index, offset);
  }
}

function withRecord(e: unknown, record: number, recordOffset: number): unknown {
  const d = (e as { details?: Record<string, unknown> }).details;
  if (d && d.record === undefined) Object.assign(d, { record, recordOffset });
  return e;
}

/**
 * TCG_EfiSpecIDEvent (PFP §10.4.5.1): signature[16], u32 platformClass, u8 specVersionMinor,
 * u8 specVersionMajor, u8 specErrata, u8 uintnSize (1 = UINT32, 2 = UINT64); Event03 then has
 * u32 numberOfAlgorithms and {u16 algorithmId, u16 digestSize} each; then u8 vendorInfoSize, vendorInfo.
 */
function decodeSpecId(c: LeCursor, agile: boolean): SpecIdEvent {
  const signature = c.bytes(16, "signature").toString("latin1").replace(/\0+$/, "");
  const platformClass = c.u32("platformClass");
  const minor = c.u8("specVersionMinor");
  const major = c.u8("specVersionMajor");
  const specErrata = c.u8("specErrata");
  const uintnAt = c.offset;
  const uintnRaw = c.u8("uintnSize");
  if (uintnRaw !== 1 && uintnRaw !== 2) throw eventLogError("bad-value", `uintnSize ${uintnRaw} is neither 1 nor 2`, uintnAt, { record: 0, field: "uintnSize" });
  let algorithms = [SHA1];
  if (agile) {
    const nAt = c.offset;
    const n = c.u32("numberOfAlgorithms");
    if (n < 1 || n > LIMITS.specIdAlgorithms) throw eventLogError(n ? "too-large" : "bad-value", `numberOfAlgorithms ${n} outside 1..${LIMITS.specIdAlgorithms}`, nAt, { record: 0, field: "numberOfAlgorithms" });
    algorithms = [];
    for (let i = 0; i < n; i++) {
      const at = c.offset;
      const algId = c.u16("algorithmId");
      const digestSize = c.u16("digestSize");
      const known = HASH_ALGS[algId];
      if (digestSize < 1 || digestSize > LIMITS.digestBytes) throw eventLogError("bad-value", `digestSize ${digestSize} of algorithm 0x${algId.toString(16)} outside 1..${LIMITS.digestBytes}`, at, { record: 0, field: "digestSize" });
      if (known && known.size !== digestSize) throw eventLogError("bad-value", `digestSize ${digestSize} for ${known.name}, which has ${known.size}`, at, { record: 0, field: "digestSize" });
      if (algorithms.some((a) => a.algId === algId)) throw eventLogError("bad-value", `algorithm 0x${algId.toString(16)} listed twice`, at, { record: 0, field: "algorithmId" });
      algorithms.push({ algId, bank: bankName(algId), digestSize });
    }
  }
  const vendorInfo = c.bytes(c.u8("vendorInfoSize"), "vendorInfo");
  if (c.remaining) throw eventLogError("bad-value", `${c.remaining} bytes after vendorInfo`, c.offset, { record: 0, field: "vendorInfo" });
  return { kind: "spec-id", signature, platformClass, specVersion: `${major}.${minor}`, specErrata, uintnSize: uintnRaw === 1 ? 4 : 8, algorithms, vendorInfo };
}

/**
 * Some tools hand over the firmware's whole log area: zero (or 0xFF) fill after the last event.
 * A fill byte at an event boundary starts a scan to the end; a scan that ran 8 bytes or more
 * remembers where the fill stopped, so the work stays linear in the log size.
 */
class PaddingScanner {
  private noPadBefore = -1;
  constructor(private readonly buf: Buffer) {}

  paddingAt(pos: number): string | undefined {
    const b = this.buf;
    if (pos < this.noPadBefore) return undefined;
    const fill = b[pos];
    if (fill !== 0 && fill !== 0xff) return undefined;
    for (let i = pos; i < b.length; i++) {
      if (b[i] !== fill) {
        if (i - pos >= 8) this.noPadBefore = i;
        return undefined;
      }
    }
    return fill === 0 ? "00" : "ff";
  }
}
