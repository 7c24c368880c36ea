/**
 * replayLog step: the event log is replayed against the quoted (verified) PCR values; only events
 * that replay to them become facts. A required PCR the log cannot explain is accepted only while it
 * still holds its reset value (nothing was ever measured into it); otherwise something the log does
 * not show was measured, and the attestation is rejected.
 */
import { TpmTrustError } from "../errors.js";
import { interpretEvents, parseEventLog, verifyEventLog, type Interpretation, type VerifiedEventLog } from "../verify/eventlog/index.js";
import { initialValue } from "../verify/eventlog/replay.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import type { Selection } from "./verify-quotes.js";

export interface LogFacts {
  /** the verified part of the event log (without a log: no events, PCRs at their reset value explained) */
  log: VerifiedEventLog;
  interpretation: Interpretation;
  explained: { bank: string; pcr: number }[];
  unexplained: { bank: string; pcr: number; reason: string }[];
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
  return { format: "crypto-agile", algorithms: [], events: [], explained, unexplained, workarounds: [], quirks: [] };
}

export function replayLog(eventLog: Buffer | undefined, quoted: PcrValues, required: Selection): LogFacts {
  const log = eventLog ? verifyEventLog(parseEventLog(eventLog), quoted) : noLog(quoted);
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
