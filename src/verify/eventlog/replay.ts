import { hash } from "node:crypto";
import { HASH_ALGS } from "../../tpm/constants.js";
import { eventLogError } from "./bytes.js";
import { EV } from "./constants.js";
import { LogEvent } from "./parse.js";
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
    if (ev.type === EV.NO_ACTION && ev.decoded.kind === "startup-locality") {
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
 * One bank's PCRs extended in place: each PCR has one buffer holding its value ‖ the digest to extend
 * it with, hashed whole. node:crypto's string output allocates no buffer, which makes a short hash
 * several times cheaper; the new value is copied back from it. Values become buffers once, at the end.
 */
class BankReplay {
  /** by PCR index (< 24) */
  private readonly regs: (Buffer | undefined)[] = [];
  constructor(
    private readonly hash: string,
    private readonly size: number,
    private readonly locality: number | undefined,
  ) {}
  /** Extends with the digest at src[at…]: the parser reads each digest with its Spec ID event's size, checked against the algorithm's. */
  extend(pcr: number, src: Uint8Array, at: number): void {
    const size = this.size;
    let r = this.regs[pcr];
    if (r === undefined) {
      r = Buffer.allocUnsafe(2 * size);
      r.set(initialValue(size, pcr, this.locality), 0);
      this.regs[pcr] = r;
    }
    for (let i = 0; i < size; i++) r[size + i] = src[at + i];
    const v = hash(this.hash, r, "binary");
    for (let i = 0; i < size; i++) r[i] = v.charCodeAt(i);
  }
  delete(pcr: number): void {
    this.regs[pcr] = undefined;
  }
  result(): Record<number, Buffer> {
    const out: Record<number, Buffer> = {};
    this.regs.forEach((r, pcr) => {
      if (r) out[pcr] = Buffer.from(r.subarray(0, this.size));
    });
    return out;
  }
}

/** Replays every bank of the log (pure; trusts digests, never event data). */
export function replayEventLog(log: EventLog): ReplayResult {
  const locality = startupLocality(log);
  const pcrs: PcrValues = {};
  const unsupportedBanks: string[] = [];
  const incomplete: ReplayResult["incomplete"] = [];
  const extending = log.events.filter(extendsPcr);
  for (const alg of log.algorithms) {
    const hash = bankHash(alg.bank);
    if (!hash) {
      unsupportedBanks.push(alg.bank);
      continue;
    }
    const bank = new BankReplay(hash, alg.digestSize, locality);
    let broken = 0; // bit p: PCR p has an event without this bank's digest
    for (const ev of extending) {
      const bit = 1 << ev.pcr;
      if (broken & bit) continue;
      // a parsed event's digest is read in the log's bytes, with no view made
      const at = ev instanceof LogEvent ? ev.digestAt(alg.bank) : 0;
      const src = ev instanceof LogEvent ? (at >= 0 ? ev.bytes : undefined) : ev.digests[alg.bank];
      if (!src) {
        broken |= bit;
        bank.delete(ev.pcr);
        incomplete.push({ bank: alg.bank, pcr: ev.pcr, record: ev.index });
        continue;
      }
      bank.extend(ev.pcr, src, at);
    }
    pcrs[alg.bank] = bank.result();
  }
  return { pcrs, ...(locality !== undefined ? { startupLocality: locality } : {}), unsupportedBanks, incomplete };
}

/** The events that extend `pcr` in `bank`, in order. */
export function pcrEvents(log: EventLog, pcr: number): TcgEvent[] {
  return log.events.filter((ev) => ev.pcr === pcr && extendsPcr(ev));
}
