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
 *   verifyAttestation    both, in that order
 */
import { TpmTrustError } from "../errors.js";
import { interpretEvents, type Interpretation } from "./eventlog/interpret.js";
import { parseEventLog } from "./eventlog/parse.js";
import { initialValue, replayEventLog } from "./eventlog/replay.js";
import type { EventLog, PcrValues } from "./eventlog/types.js";
import { verifyEventLog, type VerifiedEventLog } from "./eventlog/verify.js";
import { verifyQuoteSet, type AttestationEvidence, type AttestationKey, type QuotedPcrs, type Selection } from "./quote-set.js";

export {
  bankAlg,
  bankOrder,
  compositeDigest,
  verifyQuoteSet,
  type AttestationEvidence,
  type AttestationKey,
  type PcrClaim,
  type QuotedPcrs,
  type Selection,
  type SignedQuote,
  type UncheckedAkAttribute,
} from "./quote-set.js";

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
  if (log === undefined) return quoted;
  return { ...quoted, eventLog: verifyLogAgainstQuotes(log, quoted.pcrs, required === "quoted" ? quoted.pcrSelect : required) };
}

