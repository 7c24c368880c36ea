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
export function startupLocality(log: EventLog): number | undefined {
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
    const values: Record<number, Buffer> = {};
    const broken = new Set<number>();
    const scratch = Buffer.allocUnsafe(2 * alg.digestSize);
    for (const ev of log.events) {
      if (!extendsPcr(ev) || broken.has(ev.pcr)) continue;
      const d = ev.digests[alg.bank];
      if (!d) {
        broken.add(ev.pcr);
        delete values[ev.pcr];
        incomplete.push({ bank: alg.bank, pcr: ev.pcr, record: ev.index });
        continue;
      }
      values[ev.pcr] = extend(hash, values[ev.pcr] ?? initialValue(alg.digestSize, ev.pcr, locality), d, scratch);
    }
    pcrs[alg.bank] = values;
  }
  return { pcrs, ...(locality !== undefined ? { startupLocality: locality } : {}), unsupportedBanks, incomplete };
}

/** The events that extend `pcr` in `bank`, in order. */
export function pcrEvents(log: EventLog, pcr: number): TcgEvent[] {
  return log.events.filter((ev) => ev.pcr === pcr && extendsPcr(ev));
}
