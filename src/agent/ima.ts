/**
 * The agent's side of incremental IMA attestation: after the quote, read the measurement list from
 * securityfs and send the entries from the index the service verified last, up to those the quoted
 * PCR 10 covers. IMA appends to the list before it extends PCR 10, so the list read after the quote
 * may hold entries the quote does not cover yet: they go with the next round.
 */
import { readFileSync } from "node:fs";
import { TpmTrustError } from "../errors.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { encodeBinary, IMA_PCR, matchQuotedPcr10, parseImaList } from "../verify/ima/index.js";

export const DEFAULT_IMA_LIST = "/sys/kernel/security/ima/binary_runtime_measurements";

export interface ImaOptions {
  /** the measurement list (binary or ASCII) */
  path: string;
  /**
   * Kept across rounds: where the next increment starts (the service's `ima.nextIndex`). Unknown at
   * start: the first round sends no entries and the service, which keeps the state per host and boot,
   * names the index to send from (ERR_IMA_LIST_REQUIRED, details.fromIndex) unless nothing is new.
   */
  progress: { nextIndex?: number };
}

/** The `ima` member of the evidence: entries [fromIndex, covered) in binary form. */
export function imaIncrement(path: string, pcrs: PcrValues, fromIndex: number): { startIndex: number; list: string } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `--ima: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
  const list = parseImaList(bytes);
  const quoted = Object.fromEntries(Object.entries(pcrs).flatMap(([bank, v]) => (v[IMA_PCR] ? [[bank, v[IMA_PCR]]] : [])));
  // without a match the whole list goes, and the service judges the mismatch
  const end = Object.keys(quoted).length ? (matchQuotedPcr10(list.entries, list.templateHashAlg, quoted)?.covered ?? list.entries.length) : list.entries.length;
  const start = Math.min(fromIndex, end);
  return { startIndex: start, list: encodeBinary(list.entries.slice(start, end)).toString("base64") };
}
