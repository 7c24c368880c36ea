import { hash } from "node:crypto";
import { HASH_ALGS } from "../../tpm/constants.js";
import { eventLogError } from "./bytes.js";
import { EV } from "./constants.js";
import type { EventLog, PcrValues, TcgEvent } from "./types.js";

/** PFP §10.4.5: EV_NO_ACTION events and PCR indices ≥ 24 (Windows' 0xFFFFFFFF trust points) are never extended. */
export function extendsPcr(ev: TcgEvent): boolean {
  return ev.type !== EV.NO_ACTION && ev.pcr < 24;
}

const NODE_HASH = new Map(Object.values(HASH_ALGS).map((h) => [h.name, h.node]));

/** node:crypto name for a bank, when this Node can compute it. */
export function bankHash(bank: string): string | undefined {
  return NODE_HASH.get(bank);
}

/** TPM2_PCR_Extend: new = H(old ‖ digest). `scratch` (at least both lengths) saves an allocation per extend. */
export function extend(alg: string, pcr: Buffer, digest: Buffer, scratch?: Buffer): Buffer {
  if (!scratch || scratch.length < pcr.length + digest.length) return hash(alg, Buffer.concat([pcr, digest]), "buffer");
  pcr.copy(scratch, 0);
  digest.copy(scratch, pcr.length);
  return hash(alg, scratch.subarray(0, pcr.length + digest.length), "buffer");
}

/**
 * The locality of TPM2_Startup from a "StartupLocality" EV_NO_ACTION event (PFP §10.4.5.3). It
 * must come before any extension of PCR 0, and there may be only one.
 */
function startupLocality(log: EventLog): number | undefined {
  let locality: number | undefined;
  let pcr0Extended = false;
  for (const ev of log.events) {
    if (ev.decoded.kind === "startup-locality") {
      if (ev.pcr !== 0) throw eventLogError("bad-value", `StartupLocality event for PCR ${ev.pcr}, not PCR 0`, ev.offset, { record: ev.index });
      if (locality !== undefined) throw eventLogError("bad-value", "a second StartupLocality event", ev.offset, { record: ev.index });
      if (pcr0Extended) throw eventLogError("bad-value", "StartupLocality event after PCR 0 was extended", ev.offset, { record: ev.index });
      locality = ev.decoded.locality;
    } else if (ev.pcr === 0 && extendsPcr(ev)) pcr0Extended = true;
  }
  return locality;
}

/**
 * Reset value of a PCR (PC Client PTP: PCRs 17–22 reset to all 0xFF, the others to zero; PCR 0 ends
 * in the startup locality when firmware started the TPM from locality 3 or 4).
 */
export function initialValue(size: number, pcr: number, locality: number | undefined): Buffer {
  const v = Buffer.alloc(size, pcr >= 17 && pcr <= 22 ? 0xff : 0);
  if (pcr === 0 && locality) v[size - 1] = locality;
  return v;
}

export interface ReplayResult {
  /** Replayed value per bank for every PCR that has extending events with a digest in that bank. */
  pcrs: PcrValues;
  startupLocality?: number;
  /** Banks in the log that this Node cannot hash (algorithms sized only from the Spec ID event). */
  unsupportedBanks: string[];
  /** A PCR whose events lack this bank's digest cannot be replayed in it: the first such event. */
  incomplete: { bank: string; pcr: number; record: number }[];
}

/**
 * One bank's PCRs extended in place: `scratch` holds the value of the PCR last extended ‖ the digest,
 * values are kept as latin1 strings (node:crypto's string output allocates no buffer, which makes a
 * short hash several times cheaper) and turned into buffers once at the end.
 */
class BankReplay {
  private readonly values = new Map<number, string>();
  private readonly scratch: Buffer;
  private inScratch = -1;
  constructor(
    private readonly hash: string,
    private readonly size: number,
    private readonly locality: number | undefined,
  ) {
    this.scratch = Buffer.alloc(2 * size);
  }
  /** `digest` has the bank's size: the parser reads each with its Spec ID event's size, checked against the algorithm's. */
  extend(pcr: number, digest: Buffer): void {
    const s = this.scratch;
    const size = this.size;
    if (this.inScratch !== pcr) {
      const v = this.values.get(pcr);
      if (v === undefined) s.set(initialValue(size, pcr, this.locality), 0);
      else for (let i = 0; i < size; i++) s[i] = v.charCodeAt(i);
    }
    s.set(digest, size);
    const v = hash(this.hash, s, "binary");
    for (let i = 0; i < size; i++) s[i] = v.charCodeAt(i);
    this.values.set(pcr, v);
    this.inScratch = pcr;
  }
  delete(pcr: number): void {
    this.values.delete(pcr);
    if (this.inScratch === pcr) this.inScratch = -1;
  }
  result(): Record<number, Buffer> {
    const out: Record<number, Buffer> = {};
    for (const [pcr, v] of this.values) out[pcr] = Buffer.from(v, "latin1");
    return out;
  }
}

/** Replays every bank of the log (pure; trusts digests, never event data). */
export function replayEventLog(log: EventLog): ReplayResult {
  const locality = startupLocality(log);
  const pcrs: PcrValues = {};
  const unsupportedBanks: string[] = [];
  const incomplete: ReplayResult["incomplete"] = [];
  for (const alg of log.algorithms) {
    const hash = bankHash(alg.bank);
    if (!hash) {
      unsupportedBanks.push(alg.bank);
      continue;
    }
    const bank = new BankReplay(hash, alg.digestSize, locality);
    const broken = new Set<number>();
    for (const ev of log.events) {
      if (!extendsPcr(ev) || broken.has(ev.pcr)) continue;
      const d = ev.digests[alg.bank];
      if (!d) {
        broken.add(ev.pcr);
        bank.delete(ev.pcr);
        incomplete.push({ bank: alg.bank, pcr: ev.pcr, record: ev.index });
        continue;
      }
      bank.extend(ev.pcr, d);
    }
    pcrs[alg.bank] = bank.result();
  }
  return { pcrs, ...(locality !== undefined ? { startupLocality: locality } : {}), unsupportedBanks, incomplete };
}

/** The events that extend `pcr` in `bank`, in order. */
export function pcrEvents(log: EventLog, pcr: number): TcgEvent[] {
  return log.events.filter((ev) => ev.pcr === pcr && extendsPcr(ev));
}
