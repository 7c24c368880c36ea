/**
 * TCG event logs: parse (SHA1-format, crypto-agile, TPM 1.2), replay into every bank, verify against
 * quoted PCRs, interpret for policy. Pure functions over bytes.
 *
 *   parseEventLog(bytes)            -> EventLog (every event, unverified)
 *   replayEventLog(log)             -> PCR values per bank
 *   verifyEventLog(log, quotedPcrs) -> VerifiedEventLog (only events that replay to the quote)
 *   interpretEvents(events)         -> Secure Boot state, boot chain, Windows boot facts
 */
export type * from "./types.js";
export { parseEventLog, bankName } from "./parse.js";
export { replayEventLog, extendsPcr, type ReplayResult } from "./replay.js";
export {
  verifyEventLog,
  selfVerifyEventLog,
  type VerifiedEventLog,
  type SelfConsistentEventLog,
  type ReplayedEventLog,
  type ExplainedPcr,
  type UnexplainedPcr,
  type UnexplainedReason,
  type AppliedWorkaround,
  type PcrMismatch,
  type Divergence,
} from "./verify.js";
export {
  interpretEvents,
  interpretBootChain,
  iplKind,
  CertificateSummary,
  type Interpretation,
  type SecureBootState,
  type SignatureDatabase,
  type Authority,
  type BootChain,
  type BootImage,
  type BootRole,
  type WindowsBoot,
} from "./interpret.js";
export { dataBinding, type Binding } from "./binding.js";
export { WORKAROUNDS, type ReplayWorkaround } from "./workarounds.js";
export { EV, eventTypeName, GUID, SIPA, sipaName, LIMITS } from "./constants.js";
export type { EventLogParseReason } from "./bytes.js";
