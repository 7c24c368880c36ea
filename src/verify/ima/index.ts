/**
 * Linux IMA measurement lists: parse (binary and ASCII), check template hashes, replay into PCR 10 per
 * bank, match a quote, check boot_aggregate, verify file signatures. Pure.
 */
export { encodeBinary, IMA_TEMPLATES, isAsciiList, parseImaList, templateFields, type ParseOptions } from "./parse.js";
export {
  checkBootAggregate,
  extendValue,
  IMA_BANKS,
  IMA_PCR,
  matchQuotedPcr10,
  PADDED_SHA1_WORKAROUND,
  replayIma,
  templateHashMatches,
  type BootAggregateCheck,
  type ImaPcrs,
  type ImaReplay,
  type QuoteMatch,
} from "./replay.js";
export { loadImaKey, verifyDigestSignature, verifyImaSignature, verifyModsig, type ImaKey, type SigCheck } from "./signature.js";
export type { ImaDigest, ImaEntry, ImaList } from "./types.js";
export { verifyImaAgainstPcrs, type ImaQuoteFacts } from "./quote.js";
