/**
 * One verdict for the same evidence: the pure checks of a host attestation, shared by the offline
 * `tpmtrust verify quote` and the service.
 *
 *   verifyQuoteSet       every quote: signature over the raw bytes first (Part 3 §18.4 TPM2_Quote;
 *                        magic checked before, the structure decoded only after), AK attributes,
 *                        nonce, PCR digest; together one boot, covering the required selection
 *   verifyLogAgainstQuotes  the event log replayed against the quoted PCR values: only events that
 *                        replay become facts; a required PCR the log cannot explain passes only at
 *                        its reset value
 *   verifyImaAgainstQuotes  an IMA measurement list (or an increment of one) replayed to the quoted PCR 10;
 *                        PCR 10 is then IMA's, left out of the event log's judgement
 *   verifyAttestation    all of them, in that order
 */
import { createHash, type KeyObject } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, TPM_GENERATED_VALUE, TPM_ST } from "../tpm/constants.js";
import { decodeTpmsAttest } from "../tpm/structures.js";
import type { QuoteAttest, TpmsAttest, TpmsPcrSelection, TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { verifySignature } from "../crypto/signature.js";
import { interpretEvents, type Interpretation } from "./eventlog/interpret.js";
import { parseEventLog } from "./eventlog/parse.js";
import { initialValue, replayEventLog } from "./eventlog/replay.js";
import type { EventLog, PcrValues } from "./eventlog/types.js";
import { verifyEventLog, type VerifiedEventLog } from "./eventlog/verify.js";
import { verifyImaAgainstPcrs, type ImaQuoteFacts } from "./ima/quote.js";
import { IMA_PCR } from "./ima/replay.js";
import type { ImaList } from "./ima/types.js";
import { checkAkAttributes } from "./keyattrs.js";
import { checkNonce, checkPcrDigest, describeSelection } from "./quote.js";

export type Selection = { bank: string; pcrs: number[] }[];

export interface SignedQuote {
  /** the signed bytes: the marshalled TPMS_ATTEST exactly as the TPM produced it */
  attestBytes: Uint8Array;
  signature: TpmtSignature;
}

/** AK attributes that were not checked because only a bare key was given. */
export type UncheckedAkAttribute = "restricted" | "fixedTPM";

/**
 * The AK: its public area (its attributes are checked), or a bare key whose TPM attributes someone
 * vouches for: an AK certificate (EKU 2.23.133.8.3) that chained to trusted roots, or the caller.
 */
export type AttestationKey = TpmtPublic | { key: KeyObject; vouchedBy: "ak-certificate" | "caller" };

/** Claimed PCR values, or how to read them given a verified quote's selection (e.g. a file of bare values). */
export type PcrClaim = PcrValues | ((selection: TpmsPcrSelection[]) => PcrValues);

export interface AttestationEvidence {
  quotes: readonly SignedQuote[];
  /** the expected qualifying data (the service's single-use nonce) */
  nonce?: Uint8Array;
  /** PCR values claimed for the quotes (or read once a quote's selection is known); absent: the event log's replay is the claim */
  pcrs?: PcrClaim;
  /** the TCG event log; null: the host sent none (only PCRs at their reset value are explained); absent: not judged */
  eventLog?: Uint8Array | EventLog | null;
  /** an IMA measurement list, or the increment after what was verified before: it must replay to the quoted PCR 10 */
  ima?: ImaEvidence;
}

export interface ImaEvidence {
  list: Uint8Array | ImaList;
  /** index of the first entry (0: the list from boot_aggregate) */
  startIndex?: number;
  /** the running PCR 10 per bank after the entries verified before */
  start?: Record<string, Buffer>;
}

export interface QuotedPcrs {
  attests: TpmsAttest[];
  pcrSelect: Selection;
  /** PCR values covered by a verified quote's pcrDigest: the only PCR values to trust (empty when none were claimed) */
  pcrs: PcrValues;
  /** SHA-256 over `pcrs` in canonical order (banks by TPM_ALG_ID, PCRs ascending) */
  pcrDigest: Buffer;
  /** resetCount/restartCount of the boot the quotes were taken in */
  boot: { resetCount: number; restartCount: number; firmwareVersion: string };
  /** AK attributes not checked (a bare key vouched for by the caller) */
  unchecked: UncheckedAkAttribute[];
}

/** The event log judged against quoted PCR values: never a log replayed only against itself. */
export interface QuotedLogFacts {
  log: VerifiedEventLog;
  interpretation: Interpretation;
  explained: { bank: string; pcr: number }[];
  unexplained: { bank: string; pcr: number; reason: string }[];
}

export interface AttestationFacts extends QuotedPcrs {
  /** present when an event log was judged (or its absence: eventLog null) */
  eventLog?: QuotedLogFacts;
  /** present when an IMA list was judged */
  ima?: ImaQuoteFacts;
}

const BANKS = new Map(Object.entries(HASH_ALGS).map(([id, h]) => [h.name, Number(id)]));

/** The TPM_ALG_ID of a PCR bank named exactly as tpmtrust names it ("sha256"), else undefined. */
export function bankAlg(name: string): number | undefined {
  return BANKS.get(name);
}

export function bankOrder(a: string, b: string): number {
  return (BANKS.get(a) ?? 0xffff) - (BANKS.get(b) ?? 0xffff);
}

/** SHA-256 of the PCR values in canonical order: the pcrDigest one SHA-256-signed quote over that selection would carry. */
export function compositeDigest(pcrs: PcrValues): Buffer {
  const h = createHash("sha256");
  for (const bank of Object.keys(pcrs).sort(bankOrder)) {
    for (const pcr of Object.keys(pcrs[bank]).map(Number).sort((x, y) => x - y)) h.update(pcrs[bank][pcr]);
  }
  return h.digest();
}

/**
 * Verify, then parse: TPM_GENERATED_VALUE (bytes 0–3, Part 2 §10.12.12), the AK's attributes, the
 * signature over the raw bytes; only then the structure is decoded (tampered bytes are
 * ERR_SIGNATURE_INVALID, never a parse error), its type, the nonce, and the PCR digest.
 */
function verifyOne(q: SignedQuote, ak: AttestationKey, nonce: Uint8Array | undefined, pcrs: PcrClaim | undefined): { attest: QuoteAttest; verified?: PcrValues } {
  const bytes = Buffer.from(q.attestBytes.buffer, q.attestBytes.byteOffset, q.attestBytes.byteLength);
  if (bytes.length < 4 || bytes.readUInt32BE(0) !== TPM_GENERATED_VALUE) {
    throw new TpmTrustError("ERR_MAGIC", `magic is not TPM_GENERATED_VALUE (0xff544347)${bytes.length >= 4 ? `: 0x${bytes.readUInt32BE(0).toString(16)}` : ""}`);
  }
  const key = "key" in ak ? ak.key : ak;
  if (!("key" in ak)) checkAkAttributes(ak);
  verifySignature(q.signature, bytes, key);
  const attest = decodeTpmsAttest(bytes);
  if (attest.type !== TPM_ST.ATTEST_QUOTE) {
    throw new TpmTrustError("ERR_ATTEST_TYPE", `expected TPM_ST_ATTEST_QUOTE (0x8018), got 0x${attest.type.toString(16)}`, { type: attest.type });
  }
  checkNonce(attest, nonce);
  if (!pcrs) return { attest };
  return { attest, verified: checkPcrDigest(attest, q.signature, typeof pcrs === "function" ? pcrs(attest.attested.pcrSelect) : pcrs) };
}

/**
 * Every quote signed by the AK over the nonce, its pcrDigest covering the claimed PCR values; all
 * from one boot of one TPM; together (when PCR values were claimed) covering `required`.
 * Errors name the quote (details.quote): ERR_MAGIC, ERR_KEY_*, ERR_SIGNATURE_*, ERR_PARSE_*,
 * ERR_ATTEST_TYPE, ERR_NONCE_MISMATCH, ERR_PCR_DIGEST_MISMATCH, ERR_PCR_SELECTION_MISMATCH,
 * ERR_QUOTES_INCONSISTENT.
 */
export function verifyQuoteSet(ev: Pick<AttestationEvidence, "quotes" | "nonce" | "pcrs">, ak: AttestationKey, required: Selection | "quoted"): QuotedPcrs {
  if (ev.quotes.length === 0) throw new TpmTrustError("ERR_VALIDATION", "no quote");
  const pcrs: PcrValues = {};
  const attests: TpmsAttest[] = [];
  const pcrSelect: Selection = [];
  let boot: QuotedPcrs["boot"] | undefined;
  ev.quotes.forEach((q, i) => {
    let one: ReturnType<typeof verifyOne>;
    try {
      one = verifyOne(q, ak, ev.nonce, ev.pcrs);
    } catch (e) {
      if (e instanceof TpmTrustError) throw new TpmTrustError(e.code, `quotes[${i}]: ${e.message}`, { ...e.details, quote: i });
      throw e;
    }
    const a = one.attest;
    const b = { resetCount: a.clockInfo.resetCount, restartCount: a.clockInfo.restartCount, firmwareVersion: a.firmwareVersion.toString(16) };
    if (boot && (boot.resetCount !== b.resetCount || boot.restartCount !== b.restartCount || boot.firmwareVersion !== b.firmwareVersion)) {
      throw new TpmTrustError("ERR_QUOTES_INCONSISTENT", `quotes[${i}] was taken in another boot or firmware than quotes[0]`, { quote: i, expected: boot, actual: b });
    }
    boot = b;
    attests.push(a);
    pcrSelect.push(...describeSelection(a.attested.pcrSelect));
    for (const [bank, values] of Object.entries(one.verified ?? {})) Object.assign((pcrs[bank] ??= {}), values);
  });
  if (ev.pcrs) {
    for (const { bank, pcrs: want } of required === "quoted" ? pcrSelect : required) {
      const missing = want.filter((p) => !pcrs[bank]?.[p]);
      if (missing.length) {
        throw new TpmTrustError("ERR_PCR_SELECTION_MISMATCH", `the quotes do not cover ${bank} PCR ${missing.join(", ")}, which the host's policies require`, { bank, pcrs: missing });
      }
    }
  }
  return { attests, pcrSelect, pcrs, pcrDigest: compositeDigest(pcrs), boot: boot!, unchecked: "key" in ak && ak.vouchedBy === "caller" ? ["restricted", "fixedTPM"] : [] };
}

/** Reset values a PCR may hold when nothing was measured into it (PCR 0 may end in the startup locality 3 or 4). */
function isReset(v: Buffer, pcr: number): boolean {
  return [undefined, 3, 4].some((loc) => initialValue(v.length, pcr, loc).equals(v));
}

/** What a host without an event log proves: PCRs still at their reset value, nothing else. */
function noLog(quoted: PcrValues): VerifiedEventLog {
  const explained: VerifiedEventLog["explained"] = [];
  const unexplained: VerifiedEventLog["unexplained"] = [];
  for (const [bank, values] of Object.entries(quoted)) {
    for (const [k, v] of Object.entries(values)) {
      const pcr = Number(k);
      if (isReset(v, pcr)) explained.push({ bank, pcr, events: 0 });
      else unexplained.push({ bank, pcr, reason: "no-events", detail: "the host sent no event log" });
    }
  }
  return { against: "quote", format: "crypto-agile", algorithms: [], events: [], explained, unexplained, workarounds: [], quirks: [] };
}

/**
 * The event log (null: none was sent) replayed against the verified PCR values. A required PCR the
 * log cannot explain is accepted only while it holds its reset value: ERR_EVENTLOG_PCR_UNEXPLAINED
 * otherwise; a PCR whose events replay to another value: ERR_EVENTLOG_REPLAY_MISMATCH.
 */
export function verifyLogAgainstQuotes(eventLog: Uint8Array | EventLog | null, quoted: PcrValues, required: Selection): QuotedLogFacts {
  const log = eventLog === null ? noLog(quoted) : verifyEventLog(eventLog instanceof Uint8Array ? parseEventLog(eventLog) : eventLog, quoted);
  for (const u of log.unexplained) {
    const v = quoted[u.bank]?.[u.pcr];
    const needed = required.some((s) => s.bank === u.bank && s.pcrs.includes(u.pcr));
    if (needed && v && !isReset(v, u.pcr)) {
      throw new TpmTrustError("ERR_EVENTLOG_PCR_UNEXPLAINED", `${u.bank} PCR ${u.pcr} holds measurements the event log does not explain (${u.reason}: ${u.detail})`, {
        bank: u.bank,
        pcr: u.pcr,
        reason: u.reason,
        value: v.toString("hex"),
      });
    }
  }
  return {
    log,
    interpretation: interpretEvents(log.events),
    explained: log.explained.map((e) => ({ bank: e.bank, pcr: e.pcr })),
    unexplained: log.unexplained.map((u) => ({ bank: u.bank, pcr: u.pcr, reason: u.reason })),
  };
}

/** PCR values and a required selection without PCR 10: IMA's, when a list explains it, not the firmware log's. */
export function withoutImaPcr(quoted: PcrValues, required: Selection): { pcrs: PcrValues; required: Selection } {
  const pcrs: PcrValues = {};
  for (const [bank, values] of Object.entries(quoted)) pcrs[bank] = Object.fromEntries(Object.entries(values).filter(([i]) => Number(i) !== IMA_PCR));
  return { pcrs, required: required.map((r) => ({ ...r, pcrs: r.pcrs.filter((p) => p !== IMA_PCR) })) };
}

/**
 * The IMA list (or increment) against the verified PCR values: a prefix of it replays to the quoted
 * PCR 10 in every quoted bank, template hashes and boot_aggregate checked (ERR_IMA_*).
 */
export function verifyImaAgainstQuotes(ima: ImaEvidence, quoted: PcrValues): ImaQuoteFacts {
  const list = ima.list instanceof Uint8Array ? Buffer.from(ima.list.buffer, ima.list.byteOffset, ima.list.byteLength) : ima.list;
  return verifyImaAgainstPcrs(list, quoted, { ...(ima.startIndex !== undefined ? { startIndex: ima.startIndex } : {}), ...(ima.start ? { start: ima.start } : {}) });
}

/** The values a log claims for every PCR of every bank it carries (reset values where it has no events). */
function claimedByLog(log: EventLog): PcrValues {
  const replay = replayEventLog(log);
  const out: PcrValues = {};
  for (const alg of log.algorithms) {
    const values: Record<number, Buffer> = {};
    for (let pcr = 0; pcr < 24; pcr++) values[pcr] = replay.pcrs[alg.bank]?.[pcr] ?? initialValue(alg.digestSize, pcr, replay.startupLocality);
    out[alg.bank] = values;
  }
  return out;
}

/**
 * The whole check of one attestation. `required`: the PCR selection the verdict needs (the
 * service: its policies'; offline: "quoted", every PCR the quotes cover). Without claimed PCR
 * values, the event log's replay is the claim, and it must hash to the quoted pcrDigest
 * (ERR_EVENTLOG_REPLAY_MISMATCH otherwise).
 */
export function verifyAttestation(ev: AttestationEvidence, ak: AttestationKey, required: Selection | "quoted"): AttestationFacts {
  const log = ev.eventLog instanceof Uint8Array ? parseEventLog(ev.eventLog) : ev.eventLog;
  let pcrs = ev.pcrs;
  if (!pcrs && log) pcrs = claimedByLog(log);
  let quoted: QuotedPcrs;
  try {
    quoted = verifyQuoteSet({ quotes: ev.quotes, ...(ev.nonce ? { nonce: ev.nonce } : {}), ...(pcrs ? { pcrs } : {}) }, ak, required);
  } catch (e) {
    if (!ev.pcrs && log && e instanceof TpmTrustError && (e.code === "ERR_PCR_DIGEST_MISMATCH" || e.code === "ERR_PCR_SELECTION_MISMATCH")) {
      throw new TpmTrustError("ERR_EVENTLOG_REPLAY_MISMATCH", "the log replays to PCR values that do not hash to the quoted pcrDigest", e.details);
    }
    throw e;
  }
  const selection = required === "quoted" ? quoted.pcrSelect : required;
  const forLog = ev.ima ? withoutImaPcr(quoted.pcrs, selection) : { pcrs: quoted.pcrs, required: selection };
  const facts: AttestationFacts = { ...quoted };
  if (log !== undefined) facts.eventLog = verifyLogAgainstQuotes(log, forLog.pcrs, forLog.required);
  if (ev.ima) facts.ima = verifyImaAgainstQuotes(ev.ima, quoted.pcrs);
  return facts;
}

