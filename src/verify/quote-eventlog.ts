/**
 * Quote + event log: the log is replayed and only events that replay to PCR values covered by the
 * quote's signed pcrDigest become facts. Without separately supplied PCR values, the replayed
 * values themselves must hash to pcrDigest.
 */
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, TPM_ST } from "../tpm/constants.js";
import { selectedPcrs } from "../tpm/structures.js";
import type { TpmsAttest, TpmtSignature } from "../tpm/types.js";
import { parseEventLog } from "./eventlog/parse.js";
import { replayEventLog } from "./eventlog/replay.js";
import type { PcrValues } from "./eventlog/types.js";
import { verifyEventLog, type VerifiedEventLog } from "./eventlog/verify.js";
import { checkPcrDigest } from "./quote.js";

export function verifyEventLogAgainstQuote(logBytes: Uint8Array, attest: TpmsAttest, signature: TpmtSignature, verifiedPcrs?: PcrValues): VerifiedEventLog {
  if (attest.type !== TPM_ST.ATTEST_QUOTE) throw new TpmTrustError("ERR_ATTEST_TYPE", "an event log is verified against a quote");
  const log = parseEventLog(logBytes);
  if (verifiedPcrs) return verifyEventLog(log, verifiedPcrs);
  const replayed = replayEventLog(log).pcrs;
  const claimed: PcrValues = {};
  for (const sel of attest.attested.pcrSelect) {
    const bank = HASH_ALGS[sel.hash]?.name ?? "";
    for (const pcr of selectedPcrs(sel)) {
      const v = replayed[bank]?.[pcr];
      if (!v) {
        throw new TpmTrustError("ERR_EVENTLOG_PCR_UNEXPLAINED", `the log has no events for quoted PCR ${bank}:${pcr}; give its value with --pcrs`, { bank, pcr });
      }
      (claimed[bank] ??= {})[pcr] = v;
    }
  }
  try {
    checkPcrDigest(attest, signature, claimed);
  } catch (e) {
    if (e instanceof TpmTrustError && e.code === "ERR_PCR_DIGEST_MISMATCH") {
      throw new TpmTrustError("ERR_EVENTLOG_REPLAY_MISMATCH", "the log replays to PCR values that do not hash to the quoted pcrDigest", e.details);
    }
    throw e;
  }
  return verifyEventLog(log, claimed);
}
