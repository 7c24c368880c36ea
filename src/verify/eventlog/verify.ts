import { TpmTrustError } from "../../errors.js";
import { DATA_DIGEST_TYPES, dataBinding } from "./binding.js";
import { parseEventLog, withDigests } from "./parse.js";
import { bankHash, extend, extendsPcr, initialValue, pcrEvents, replayEventLog } from "./replay.js";
import type { EventLog, ParseQuirk, PcrValues, SpecIdAlgorithm, TcgEvent } from "./types.js";
import { WORKAROUNDS } from "./workarounds.js";

export interface ExplainedPcr {
  bank: string;
  pcr: number;
  /** Events that replay to the quoted value (0: the PCR still holds its reset value). */
  events: number;
  /** Name of the workaround that was needed, if any. */
  workaround?: string;
}

export type UnexplainedReason = "no-events" | "bank-not-in-log" | "bank-unsupported" | "incomplete-digests";

export interface UnexplainedPcr {
  bank: string;
  pcr: number;
  reason: UnexplainedReason;
  detail: string;
}

export interface AppliedWorkaround {
  name: string;
  bank: string;
  pcr: number;
  description: string;
}

export interface Divergence {
  /** Record number of the first event the quote does not reflect, when it can be localised. */
  record?: number;
  offset?: number;
  reason: string;
}

export interface PcrMismatch {
  bank: string;
  pcr: number;
  quoted: string;
  replayed: string;
  divergence: Divergence;
}

/** What replaying a log against PCR values leaves: the events that replay, and the PCRs they explain. */
export interface ReplayedEventLog {
  /** what the log was replayed against: PCR values a quote signed, or only its own replay */
  against: "quote" | "self";
  format: EventLog["format"];
  algorithms: SpecIdAlgorithm[];
  /** Extending events of explained PCRs, in log order; digests only of the banks that were verified. */
  events: TcgEvent[];
  explained: ExplainedPcr[];
  unexplained: UnexplainedPcr[];
  workarounds: AppliedWorkaround[];
  quirks: ParseQuirk[];
  startupLocality?: number;
}

/** The part of an event log that replays to quoted PCRs: the only events to treat as facts. */
export interface VerifiedEventLog extends ReplayedEventLog {
  against: "quote";
}

/** A log replayed only against itself: what it claims, consistently shaped; it proves nothing about a host. */
export interface SelfConsistentEventLog extends ReplayedEventLog {
  against: "self";
}

/**
 * Replays the log against quoted PCR values. Every quoted PCR ends up explained (its events replay
 * to the quoted value, possibly through a named workaround) or unexplained (with why); any PCR whose
 * events replay to something else rejects the whole log with ERR_EVENTLOG_REPLAY_MISMATCH, naming
 * bank, PCR and the first point of divergence.
 */
export function verifyEventLog(input: EventLog | Uint8Array, quoted: PcrValues): VerifiedEventLog {
  const log = input instanceof Uint8Array ? parseEventLog(input) : input;
  const replay = replayEventLog(log);
  const explained: ExplainedPcr[] = [];
  const unexplained: UnexplainedPcr[] = [];
  const workarounds: AppliedWorkaround[] = [];
  const mismatches: PcrMismatch[] = [];
  const algs = new Map(log.algorithms.map((a) => [a.bank, a]));

  for (const [bank, values] of Object.entries(quoted)) {
    for (const [key, value] of Object.entries(values)) {
      const pcr = Number(key);
      if (!Number.isInteger(pcr) || pcr < 0 || pcr > 23) throw new TpmTrustError("ERR_VALIDATION", `quoted PCR index "${key}" is not 0..23`, { bank, pcr: key });
      const alg = algs.get(bank);
      const hash = bankHash(bank);
      const incomplete = replay.incomplete.find((i) => i.bank === bank && i.pcr === pcr);
      if (!alg) unexplained.push({ bank, pcr, reason: "bank-not-in-log", detail: `the log has no ${bank} digests` });
      else if (!hash) unexplained.push({ bank, pcr, reason: "bank-unsupported", detail: `${bank} cannot be computed here` });
      else if (incomplete) unexplained.push({ bank, pcr, reason: "incomplete-digests", detail: `record ${incomplete.record} has no ${bank} digest` });
      else {
        const events = pcrEvents(log, pcr);
        const replayed = replay.pcrs[bank][pcr] ?? initialValue(alg.digestSize, pcr, replay.startupLocality);
        if (replayed.equals(value)) {
          explained.push({ bank, pcr, events: events.length });
        } else if (events.length === 0) {
          unexplained.push({ bank, pcr, reason: "no-events", detail: `the log has no events for PCR ${pcr} and the quoted value is not its reset value` });
        } else {
          const w = tryWorkarounds(log, pcr, hash, replayed, value);
          if (w) {
            explained.push({ bank, pcr, events: events.length, workaround: w.name });
            workarounds.push({ name: w.name, bank, pcr, description: w.description });
          } else {
            const others = Object.keys(quoted).filter((b) => b !== bank && quoted[b][pcr] && replay.pcrs[b]?.[pcr]?.equals(quoted[b][pcr]));
            mismatches.push({ bank, pcr, quoted: value.toString("hex"), replayed: replayed.toString("hex"), divergence: divergence(events, bank, hash, alg.digestSize, pcr, replay.startupLocality, value, others) });
          }
        }
      }
    }
  }
  if (mismatches.length) {
    const m = mismatches[0];
    throw new TpmTrustError(
      "ERR_EVENTLOG_REPLAY_MISMATCH",
      `the event log does not replay to the quoted ${m.bank} PCR ${m.pcr}: ${m.divergence.reason}`,
      { bank: m.bank, pcr: m.pcr, ...(m.divergence.record !== undefined ? { record: m.divergence.record, offset: m.divergence.offset } : {}), mismatches },
    );
  }

  const verifiedBanks = new Map<number, string[]>();
  for (const e of explained) if (e.events > 0) verifiedBanks.set(e.pcr, [...(verifiedBanks.get(e.pcr) ?? []), e.bank]);
  const events: TcgEvent[] = [];
  for (const ev of log.events) {
    const banks = extendsPcr(ev) ? verifiedBanks.get(ev.pcr) : undefined;
    if (!banks) continue;
    const digests: Record<string, Buffer> = {};
    for (const b of banks) digests[b] = ev.digests[b];
    events.push(withDigests(ev, digests));
  }
  return {
    against: "quote",
    format: log.format,
    algorithms: log.algorithms,
    events,
    explained,
    unexplained,
    workarounds,
    quirks: log.quirks,
    ...(replay.startupLocality !== undefined ? { startupLocality: replay.startupLocality } : {}),
  };
}

function tryWorkarounds(log: EventLog, pcr: number, hash: string, replayed: Buffer, want: Buffer) {
  for (const w of WORKAROUNDS) {
    for (const seq of w.unloggedExtends(log, pcr, hash)) {
      if (seq.reduce((v, d) => extend(hash, v, d), replayed).equals(want)) return w;
    }
  }
  return undefined;
}

/**
 * Where the log and the quote part ways. A quote taken before the log's last events equals an
 * intermediate value; otherwise the first event whose data-derived digest does not hash its data is
 * the likely fault; failing both, the divergence is only bounded to the PCR's events.
 */
function divergence(events: TcgEvent[], bank: string, hash: string, size: number, pcr: number, locality: number | undefined, quoted: Buffer, matchingBanks: string[]): Divergence {
  const at = (ev: TcgEvent) => ({ record: ev.index, offset: ev.offset });
  let v = initialValue(size, pcr, locality);
  for (let k = 0; k < events.length; k++) {
    if (v.equals(quoted)) {
      return { ...at(events[k]), reason: `the quoted value equals the replay of the first ${k} of ${events.length} events; the quote does not reflect record ${events[k].index} and later` };
    }
    v = extend(hash, v, events[k].digests[bank]);
  }
  const forged = events.find((ev) => DATA_DIGEST_TYPES.has(ev.type) && dataBinding(withDigests(ev, { [bank]: ev.digests[bank] }))?.bound === false);
  if (forged) return { ...at(forged), reason: `record ${forged.index} (${forged.typeName}) has a ${bank} digest that is not the hash of its event data` };
  const also = matchingBanks.length ? `; the ${matchingBanks.join(", ")} bank${matchingBanks.length > 1 ? "s" : ""} of this PCR match, so this bank's digests differ` : "";
  return {
    ...at(events[0]),
    reason: `no prefix of the ${events.length} events reproduces the quoted value: an event is missing, altered or out of order at or after record ${events[0].index}${also}`,
  };
}

/**
 * For offline tools without a quote: verifies the log against its own replay over all 24 PCRs of every
 * bank it can hash (PCRs without events at their reset value). The result says what the log claims,
 * consistently shaped, and proves nothing about the host.
 */
export function selfVerifyEventLog(log: EventLog): SelfConsistentEventLog {
  const replay = replayEventLog(log);
  const quoted: PcrValues = {};
  for (const alg of log.algorithms) {
    if (!bankHash(alg.bank)) continue;
    const values: Record<number, Buffer> = {};
    for (let pcr = 0; pcr < 24; pcr++) values[pcr] = replay.pcrs[alg.bank][pcr] ?? initialValue(alg.digestSize, pcr, replay.startupLocality);
    for (const i of replay.incomplete) if (i.bank === alg.bank) delete values[i.pcr];
    quoted[alg.bank] = values;
  }
  return { ...verifyEventLog(log, quoted), against: "self" };
}
