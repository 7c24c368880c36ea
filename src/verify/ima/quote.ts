import { TpmTrustError } from "../../errors.js";
import type { PcrValues } from "../eventlog/types.js";
import { parseImaList, type ParseOptions } from "./parse.js";
import { checkBootAggregate, IMA_PCR, matchQuotedPcr10, templateHashMatches, type BootAggregateCheck } from "./replay.js";
import type { ImaList } from "./types.js";

export interface ImaQuoteFacts {
  list: ImaList;
  /** Entries the quote covers (from the start of `entries`); later ones were appended after the quote. */
  covered: number;
  pcr10: Record<string, Buffer>;
  workarounds: { name: string; bank: string; description: string }[];
  /** Present when the list starts at boot_aggregate. */
  bootAggregate?: BootAggregateCheck;
}

/**
 * An IMA list against verified (quoted) PCR values: some prefix must replay to the quoted PCR 10 in
 * every quoted bank (ERR_IMA_REPLAY_MISMATCH), every covered entry's template hash must match
 * (ERR_IMA_TEMPLATE_HASH_MISMATCH), and a boot_aggregate must be the hash of the quoted PCRs 0-7/0-9
 * (ERR_IMA_BOOT_AGGREGATE_MISMATCH) when they were quoted. `start`: running PCR 10 per bank after the
 * entries verified before (incremental lists).
 */
export function verifyImaAgainstPcrs(input: Buffer | ImaList, pcrs: PcrValues, o: ParseOptions & { start?: Record<string, Buffer> } = {}): ImaQuoteFacts {
  const list = Buffer.isBuffer(input) ? parseImaList(input, o) : input;
  const quoted: Record<string, Buffer> = {};
  for (const [bank, values] of Object.entries(pcrs)) if (values[IMA_PCR]) quoted[bank] = values[IMA_PCR];
  if (!Object.keys(quoted).length) throw new TpmTrustError("ERR_IMA_REPLAY_MISMATCH", "PCR 10 was not quoted: the IMA list cannot be verified", { quotedBanks: Object.keys(pcrs) });
  const m = matchQuotedPcr10(list.entries, list.templateHashAlg, quoted, o.start);
  if (!m) {
    throw new TpmTrustError("ERR_IMA_REPLAY_MISMATCH", `no prefix of the ${list.entries.length} IMA entries replays to the quoted PCR 10 (${Object.keys(quoted).join(", ")})`, {
      entries: list.entries.length,
      firstIndex: list.entries[0]?.index ?? o.startIndex ?? 0,
      quoted: Object.fromEntries(Object.entries(quoted).map(([b, v]) => [b, v.toString("hex")])),
    });
  }
  // the replay of the list's own bank checked the template hashes on the way; else check the covered entries now
  let bad = m.templatesChecked ? m.templateMismatch : undefined;
  for (let i = 0; !m.templatesChecked && bad === undefined && i < m.covered; i++) if (!templateHashMatches(list.entries[i], list.templateHashAlg)) bad = i;
  if (bad !== undefined) {
    const e = list.entries[bad];
    throw new TpmTrustError("ERR_IMA_TEMPLATE_HASH_MISMATCH", `IMA entry ${e.index} (${e.path}): the template hash is not the ${list.templateHashAlg} of its template data`, { index: e.index, offset: e.offset, path: e.path });
  }
  const facts: ImaQuoteFacts = { list, covered: m.covered, pcr10: m.pcrs, workarounds: m.workarounds };
  const first = list.entries[0];
  if (first && first.index === 0 && m.covered > 0) {
    facts.bootAggregate = checkBootAggregate(first, pcrs);
    const quotedBoot = pcrs[first.digest.alg] && [0, 1, 2, 3, 4, 5, 6, 7].every((i) => pcrs[first.digest.alg][i]);
    if (quotedBoot && !facts.bootAggregate.ok) throw new TpmTrustError("ERR_IMA_BOOT_AGGREGATE_MISMATCH", facts.bootAggregate.reason, { index: 0 });
  }
  return facts;
}
