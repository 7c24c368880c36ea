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
    else v.set(sha1 ?? hash("sha1", e.hashed, "buffer"));
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

/** Does the latin1 string `s` hold exactly the bytes of `b`? */
function sameBytes(s: string, b: Buffer): boolean {
  if (s.length !== b.length) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== b[i]) return false;
  return true;
}

/**
 * TPM2_PCR_Extend, one bank, without allocating: `scratch` holds the running value ‖ the digest
 * extended (2 × the bank's size, a shorter digest zero-padded). Digests computed here stay latin1
 * strings (node:crypto allocates no buffer for them, which makes a hash several times cheaper).
 */
class Extender {
  private readonly scratch: Buffer;
  private readonly ones: Buffer;
  readonly size: number;
  constructor(readonly bank: string) {
    this.size = bankSize(bank);
    this.scratch = Buffer.alloc(2 * this.size);
    this.ones = Buffer.alloc(this.size, 0xff);
  }
  /** Starts from `pcr`. */
  load(pcr: Buffer): void {
    this.scratch.set(pcr, 0);
  }
  /** The running value, copied. */
  current(): Buffer {
    return Buffer.from(this.scratch.subarray(0, this.size));
  }
  /** Extends `digest` into the running value; returns the new value as a latin1 string. */
  extend(digest: Buffer | string): string {
    const s = this.scratch;
    const size = this.size;
    const n = digest.length;
    if (typeof digest === "string") for (let i = 0; i < n; i++) s[size + i] = digest.charCodeAt(i);
    else s.set(digest, size);
    if (n < size) s.fill(0, size + n);
    const v = hash(this.bank, s, "binary");
    for (let i = 0; i < size; i++) s[i] = v.charCodeAt(i);
    return v;
  }
  /** What IMA extends for `e`: the listed template hash in its own bank, else the bank's hash of the template data (padded: the SHA-1 one); a violation extends all ones. */
  value(e: ImaEntry, templateHashAlg: string, padded: boolean): Buffer | string {
    if (e.violation) return padded ? this.ones.subarray(0, 20) : this.ones;
    if (padded) return templateHashAlg === "sha1" ? e.templateHash : hash("sha1", e.hashed, "binary");
    return this.bank === templateHashAlg ? e.templateHash : hash(this.bank, e.hashed, "binary");
  }
}

function bankSize(bank: string): number {
  const size = BANK_SIZES[bank];
  if (!size) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `PCR bank ${bank} cannot be replayed here`, { bank });
  return size;
}

/**
 * Replays entries into every bank in `banks`, from zero or from the running values of an earlier
 * increment. The SHA-1 bank of a SHA-1 list uses the listed template hashes (checked separately).
 */
export function replayIma(list: Pick<ImaList, "entries" | "templateHashAlg">, banks: readonly string[] = IMA_BANKS, from?: { pcrs: ImaPcrs; paddedSha1?: ImaPcrs }): ImaReplay {
  const pcrs: ImaPcrs = {};
  const paddedSha1: ImaPcrs = {};
  for (const bank of banks) {
    const x = new Extender(bank);
    const zero = Buffer.alloc(x.size);
    const run = (into: Record<number, Buffer>, padded: boolean) => {
      for (const e of list.entries) {
        x.load(into[e.pcr] ?? zero);
        x.extend(x.value(e, list.templateHashAlg, padded));
        into[e.pcr] = x.current();
      }
      return into;
    };
    pcrs[bank] = run({ ...(from?.pcrs[bank] ?? {}) }, false);
    if (bank !== "sha1") paddedSha1[bank] = run({ ...(from?.paddedSha1?.[bank] ?? from?.pcrs[bank] ?? {}) }, true);
  }
  return { pcrs, paddedSha1 };
}

export interface QuoteMatch {
  /** Entries (of those given) the quote covers: the rest were appended after the quote. */
  covered: number;
  /** PCR 10 per bank after the covered entries. */
  pcrs: Record<string, Buffer>;
  workarounds: { name: string; bank: string; description: string }[];
  /**
   * Position (in `entries`) of the first covered entry whose template hash is not the hash of its
   * data, when the replay of the list's own bank checked them on the way (`templatesChecked`).
   */
  templateMismatch?: number;
  templatesChecked: boolean;
}

interface BankMatch {
  /** entries covered: the position after the PCR-10 entry whose extend reached the quoted value */
  covered: number;
  padded: boolean;
  templateMismatch?: number;
}

/**
 * One pass over the entries in one bank, from `start`, until the running PCR 10 equals `quoted`
 * (the smallest prefix). In the bank of the list's template hashes it also checks each entry's
 * template hash against its data (the kernel extends the hash it lists).
 */
function replayToQuoted(entries: readonly ImaEntry[], templateHashAlg: string, x: Extender, quoted: Buffer, start: Buffer, padded: boolean): BankMatch | undefined {
  const check = !padded && x.bank === templateHashAlg;
  if (start.equals(quoted)) return { covered: 0, padded };
  const want = quoted.toString("latin1");
  x.load(start);
  let templateMismatch: number | undefined;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (check && templateMismatch === undefined && !e.violation && !sameBytes(hash(templateHashAlg, e.hashed, "binary"), e.templateHash)) templateMismatch = i;
    if (e.pcr !== IMA_PCR) continue;
    if (x.extend(x.value(e, templateHashAlg, padded)) === want) return { covered: i + 1, padded, ...(templateMismatch !== undefined ? { templateMismatch } : {}) };
  }
  return undefined;
}

/**
 * Finds the prefix of `entries` whose replay from `start` (per bank) equals the quoted PCR 10 in every
 * quoted bank: IMA appends to the list before it extends, so the list may hold more than the quote
 * covers, never less. Undefined when no prefix matches (ERR_IMA_REPLAY_MISMATCH for the caller).
 */
export function matchQuotedPcr10(entries: readonly ImaEntry[], templateHashAlg: string, quoted: Record<string, Buffer>, start: Record<string, Buffer> = {}): QuoteMatch | undefined {
  const banks = Object.keys(quoted).filter((b) => BANK_SIZES[b]);
  if (!banks.length) return undefined;
  const perBank: (BankMatch & { bank: string })[] = [];
  for (const bank of banks) {
    const x = new Extender(bank);
    const from = start[bank] ?? Buffer.alloc(x.size);
    const found = replayToQuoted(entries, templateHashAlg, x, quoted[bank], from, false) ?? (bank === "sha1" ? undefined : replayToQuoted(entries, templateHashAlg, x, quoted[bank], from, true));
    if (!found) return undefined;
    perBank.push({ bank, ...found });
  }
  const covered = perBank[0].covered;
  if (perBank.some((p) => p.covered !== covered)) return undefined;
  const checked = perBank.find((p) => p.bank === templateHashAlg && !p.padded);
  return {
    covered,
    pcrs: Object.fromEntries(banks.map((b) => [b, quoted[b]])),
    workarounds: perBank.filter((p) => p.padded).map((p) => ({ name: PADDED_SHA1_WORKAROUND.name, bank: p.bank, description: PADDED_SHA1_WORKAROUND.description })),
    templatesChecked: !!checked,
    ...(checked?.templateMismatch !== undefined ? { templateMismatch: checked.templateMismatch } : {}),
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
