import { hash } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import type { PcrValues } from "../eventlog/types.js";
import type { ImaEntry, ImaList } from "./types.js";

/** The PCR IMA extends unless its policy names another (`pcr=` rule). */
export const IMA_PCR = 10;

const BANK_SIZES: Record<string, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
export const IMA_BANKS = Object.keys(BANK_SIZES);

/**
 * Kernels before 5.8 extended every bank but SHA-1 with the SHA-1 template hash zero-padded to the
 * bank's size instead of the bank's own hash of the template data. Tried only when the plain replay of
 * a bank fails, and named when it explains the quoted value.
 */
export const PADDED_SHA1_WORKAROUND = {
  name: "ima-padded-sha1-template-hash",
  description: "the kernel (before Linux 5.8) extended this bank with the SHA-1 template hash zero-padded to the bank's size",
} as const;

/** Does the entry's template hash equal the hash of its template data? (Violations carry zeros: nothing to check.) */
export function templateHashMatches(e: ImaEntry, alg: string): boolean {
  if (e.violation) return true;
  try {
    return hash(alg, e.hashed, "buffer").equals(e.templateHash);
  } catch {
    throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `template hash algorithm ${alg} is not available here`, { alg });
  }
}

/** The value IMA extends into `bank` for the entry (violation: all ones; padded: the zero-padded SHA-1 template hash). */
export function extendValue(e: ImaEntry, bank: string, padded = false, sha1?: Buffer): Buffer {
  const size = BANK_SIZES[bank];
  if (padded) {
    const v = Buffer.alloc(size);
    if (e.violation) v.fill(0xff, 0, 20);
    else (sha1 ?? hash("sha1", e.hashed, "buffer")).copy(v);
    return v;
  }
  if (e.violation) return Buffer.alloc(size, 0xff);
  return hash(bank, e.hashed, "buffer");
}

/** Running PCR value per bank (and per PCR: a policy may route measurements elsewhere). */
export type ImaPcrs = Record<string, Record<number, Buffer>>;

export interface ImaReplay {
  /** `{ sha1: { 10: value }, sha256: { 10: value }, … }` */
  pcrs: ImaPcrs;
  /** The same banks replayed as pre-5.8 kernels extended them (zero-padded SHA-1 template hash). */
  paddedSha1: ImaPcrs;
}

/**
 * Replays entries into every bank in `banks`, from zero or from the running values of an earlier
 * increment. The SHA-1 bank of a SHA-1 list uses the listed template hashes (checked separately).
 */
export function replayIma(list: Pick<ImaList, "entries" | "templateHashAlg">, banks: readonly string[] = IMA_BANKS, from?: { pcrs: ImaPcrs; paddedSha1?: ImaPcrs }): ImaReplay {
  const pcrs: ImaPcrs = {};
  const paddedSha1: ImaPcrs = {};
  for (const bank of banks) {
    const size = BANK_SIZES[bank];
    if (!size) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `PCR bank ${bank} cannot be replayed here`, { bank });
    const plain: Record<number, Buffer> = { ...(from?.pcrs[bank] ?? {}) };
    const padded: Record<number, Buffer> = { ...(from?.paddedSha1?.[bank] ?? from?.pcrs[bank] ?? {}) };
    const useListed = bank === list.templateHashAlg;
    for (const e of list.entries) {
      const v = useListed && !e.violation ? e.templateHash : extendValue(e, bank);
      plain[e.pcr] = hash(bank, Buffer.concat([plain[e.pcr] ?? Buffer.alloc(size), v]), "buffer");
      if (bank !== "sha1") {
        const sha1 = list.templateHashAlg === "sha1" && !e.violation ? e.templateHash : undefined;
        padded[e.pcr] = hash(bank, Buffer.concat([padded[e.pcr] ?? Buffer.alloc(size), extendValue(e, bank, true, sha1)]), "buffer");
      }
    }
    pcrs[bank] = plain;
    if (bank !== "sha1") paddedSha1[bank] = padded;
  }
  return { pcrs, paddedSha1 };
}

export interface QuoteMatch {
  /** Entries (of those given) the quote covers: the rest were appended after the quote. */
  covered: number;
  /** PCR 10 per bank after the covered entries. */
  pcrs: Record<string, Buffer>;
  workarounds: { name: string; bank: string; description: string }[];
}

/**
 * Finds the prefix of `entries` whose replay from `start` (per bank) equals the quoted PCR 10 in every
 * quoted bank: IMA appends to the list before it extends, so the list may hold more than the quote
 * covers, never less. Undefined when no prefix matches (ERR_IMA_REPLAY_MISMATCH for the caller).
 */
export function matchQuotedPcr10(entries: readonly ImaEntry[], templateHashAlg: string, quoted: Record<string, Buffer>, start: Record<string, Buffer> = {}): QuoteMatch | undefined {
  const banks = Object.keys(quoted).filter((b) => BANK_SIZES[b]);
  if (!banks.length) return undefined;
  const ten = entries.filter((e) => e.pcr === IMA_PCR);
  const perBank: { bank: string; at: number; padded: boolean }[] = [];
  for (const bank of banks) {
    let found: { at: number; padded: boolean } | undefined;
    for (const padded of bank === "sha1" ? [false] : [false, true]) {
      let v = start[bank] ?? Buffer.alloc(BANK_SIZES[bank]);
      if (v.equals(quoted[bank])) found = { at: 0, padded };
      for (let i = 0; i < ten.length && !found; i++) {
        const e = ten[i];
        const d = bank === templateHashAlg && !e.violation ? e.templateHash : extendValue(e, bank, padded, templateHashAlg === "sha1" && !e.violation ? e.templateHash : undefined);
        v = hash(bank, Buffer.concat([v, d]), "buffer");
        if (v.equals(quoted[bank])) found = { at: i + 1, padded };
      }
      if (found) break;
    }
    if (!found) return undefined;
    perBank.push({ bank, ...found });
  }
  const at = perBank[0].at;
  if (perBank.some((p) => p.at !== at)) return undefined;
  const coveredTen = ten.slice(0, at);
  const covered = at === 0 ? 0 : entries.indexOf(coveredTen[at - 1]) + 1;
  return {
    covered,
    pcrs: Object.fromEntries(banks.map((b) => [b, quoted[b]])),
    workarounds: perBank.filter((p) => p.padded).map((p) => ({ name: PADDED_SHA1_WORKAROUND.name, bank: p.bank, description: PADDED_SHA1_WORKAROUND.description })),
  };
}

export interface BootAggregateCheck {
  ok: boolean;
  /** Which PCRs the matching form covers ("0-7" or "0-9") and in which bank. */
  form?: string;
  reason?: string;
}

/**
 * boot_aggregate (ima_calc_boot_aggregate): H(PCR0 ‖ … ‖ PCR7) in the bank of the digest's algorithm,
 * with PCRs 8 and 9 appended by kernels from 5.8 on a TPM 2.0. All zero when IMA started without a TPM.
 */
export function checkBootAggregate(e: ImaEntry, quoted: PcrValues): BootAggregateCheck {
  if (e.path !== "boot_aggregate") return { ok: false, reason: `the first entry is ${e.path}, not boot_aggregate` };
  const alg = e.digest.alg;
  if (e.digest.digest.every((b) => b === 0)) return { ok: false, reason: "boot_aggregate is zero: IMA measured without a TPM" };
  const bank = quoted[alg];
  if (!bank) return { ok: false, reason: `PCRs 0-7 were not quoted in the ${alg} bank of the boot_aggregate` };
  for (const last of [7, 9]) {
    const pcrs = Array.from({ length: last + 1 }, (_, i) => bank[i]);
    if (pcrs.some((p) => !p)) continue;
    if (hash(alg, Buffer.concat(pcrs), "buffer").equals(e.digest.digest)) return { ok: true, form: `${alg} PCRs 0-${last}` };
  }
  return { ok: false, reason: `boot_aggregate ${alg}:${e.digest.digest.toString("hex")} is not the ${alg} hash of the quoted PCRs 0-7 or 0-9` };
}
