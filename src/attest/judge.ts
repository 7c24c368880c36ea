/**
 * verifyLogAgainstQuotes + evaluatePolicies, remembered. Their result is a pure function of the event log bytes,
 * the verified PCR values and the policy versions (a policy id names one immutable version), and a
 * host in continuous attestation sends the same log with the same PCR values until it reboots: the
 * judgement of an unchanged boot is looked up instead of replayed. That also lets such a host name
 * its log by SHA-256 instead of sending it again: the judgement found is exactly what the log would
 * give, since the fresh quote verified the very PCR values it was made for. Only successful
 * judgements are kept; a log that fails to verify is examined afresh every time.
 */
import { createHash } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { evaluatePolicies, type HostPolicy, type PolicyOutcome } from "./policies.js";
import { bankOrder, verifyLogAgainstQuotes, type Selection } from "../verify/attestation.js";

export interface Judgement {
  outcomes: PolicyOutcome[];
  explained: { bank: string; pcr: number }[];
  unexplained: { bank: string; pcr: number; reason: string }[];
  workarounds: { name: string; bank: string; pcr: number; description: string }[];
}

function keyOf(logSha256: Buffer | undefined, pcrs: PcrValues, policies: HostPolicy[]): string {
  const h = createHash("sha256");
  h.update(logSha256 ?? "no-log");
  for (const bank of Object.keys(pcrs).sort(bankOrder)) {
    for (const pcr of Object.keys(pcrs[bank]).map(Number).sort((a, b) => a - b)) h.update(`|${bank}:${pcr}=`).update(pcrs[bank][pcr]);
  }
  for (const p of policies) h.update(`|${p.id}`);
  return h.digest("base64");
}

export class JudgementCache {
  private readonly entries = new Map<string, Judgement>();
  constructor(private readonly size: number) {}

  /**
   * `log`: the event log and its SHA-256, or only the hash a host named it by (then a judgement of
   * that log must be known: ERR_EVENTLOG_REQUIRED otherwise). Throws what verifyLogAgainstQuotes throws
   * (ERR_EVENTLOG_*, ERR_PARSE_EVENTLOG); policy failures are outcomes.
   */
  judge(log: { bytes?: Buffer; sha256?: Buffer }, pcrs: PcrValues, required: Selection, policies: HostPolicy[]): Judgement {
    const key = this.size > 0 ? keyOf(log.sha256, pcrs, policies) : "";
    const hit = this.entries.get(key);
    if (hit) {
      // least recently used goes first
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    if (log.sha256 && !log.bytes) {
      throw new TpmTrustError("ERR_EVENTLOG_REQUIRED", "no judgement of the event log with that SHA-256 and these PCR values is known here: send the log itself", {
        eventLogSha256: log.sha256.toString("hex"),
      });
    }
    const facts = verifyLogAgainstQuotes(log.bytes ?? null, pcrs, required);
    const j: Judgement = {
      outcomes: evaluatePolicies(policies, { log: facts.log, interpretation: facts.interpretation }),
      explained: facts.explained,
      unexplained: facts.unexplained,
      workarounds: facts.log.workarounds.map((w) => ({ name: w.name, bank: w.bank, pcr: w.pcr, description: w.description })),
    };
    if (this.size > 0) {
      if (this.entries.size >= this.size) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(key, j);
    }
    return j;
  }
}
