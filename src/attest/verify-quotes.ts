/**
 * verifyQuote step of the attestation flow: every quote must be signed by the host's bound AK over
 * the challenge nonce, and its pcrDigest must cover the PCR values the host sent. Together the
 * quotes must cover the PCR selection the host's policies require, and come from one boot of one TPM.
 */
import { createHash } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS } from "../tpm/constants.js";
import type { TpmtPublic } from "../tpm/types.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { verifyQuote } from "../verify/quote.js";
import type { Evidence } from "./evidence.js";

export type Selection = { bank: string; pcrs: number[] }[];

export interface QuotedPcrs {
  /** PCR values covered by a verified quote: the only PCR values the flow trusts */
  pcrs: PcrValues;
  /** SHA-256 over `pcrs` in canonical order (banks by TPM_ALG_ID, PCRs ascending) */
  pcrDigest: Buffer;
  /** resetCount/restartCount of the boot the quotes were taken in */
  boot: { resetCount: number; restartCount: number; firmwareVersion: string };
}

const BANKS = new Map(Object.entries(HASH_ALGS).map(([id, h]) => [h.name, Number(id)]));

/** The TPM_ALG_ID of a PCR bank named exactly as tpmtrust names it ("sha256"), else undefined. */
export function bankAlg(name: string): number | undefined {
  return BANKS.get(name);
}

export function bankOrder(a: string, b: string): number {
  return (BANKS.get(a) ?? 0xffff) - (BANKS.get(b) ?? 0xffff);
}

/** SHA-256 of the PCR values in canonical order: the pcrDigest one SHA-256-signed quote over that selection would carry. */
export function compositeDigest(pcrs: PcrValues): Buffer {
  const h = createHash("sha256");
  for (const bank of Object.keys(pcrs).sort(bankOrder)) {
    for (const pcr of Object.keys(pcrs[bank]).map(Number).sort((x, y) => x - y)) h.update(pcrs[bank][pcr]);
  }
  return h.digest();
}

export function verifyQuotes(ev: Evidence, ak: TpmtPublic, required: Selection): QuotedPcrs {
  const pcrs: PcrValues = {};
  let boot: QuotedPcrs["boot"] | undefined;
  ev.quotes.forEach((q, i) => {
    let verified: PcrValues | undefined;
    try {
      verified = verifyQuote({ attestBytes: q.attestBytes, attest: q.attest, signature: q.signature, ak, nonce: ev.nonce, pcrs: ev.pcrs }).verifiedPcrs;
    } catch (e) {
      if (e instanceof TpmTrustError) throw new TpmTrustError(e.code, `quotes[${i}]: ${e.message}`, { ...e.details, quote: i });
      throw e;
    }
    const b = { resetCount: q.attest.clockInfo.resetCount, restartCount: q.attest.clockInfo.restartCount, firmwareVersion: q.attest.firmwareVersion.toString(16) };
    if (boot && (boot.resetCount !== b.resetCount || boot.restartCount !== b.restartCount || boot.firmwareVersion !== b.firmwareVersion)) {
      throw new TpmTrustError("ERR_QUOTES_INCONSISTENT", `quotes[${i}] was taken in another boot or firmware than quotes[0]`, { quote: i, expected: boot, actual: b });
    }
    boot = b;
    for (const [bank, values] of Object.entries(verified ?? {})) Object.assign((pcrs[bank] ??= {}), values);
  });
  for (const { bank, pcrs: want } of required) {
    const missing = want.filter((p) => !pcrs[bank]?.[p]);
    if (missing.length) {
      throw new TpmTrustError("ERR_PCR_SELECTION_MISMATCH", `the quotes do not cover ${bank} PCR ${missing.join(", ")}, which the host's policies require`, { bank, pcrs: missing });
    }
  }
  return { pcrs, pcrDigest: compositeDigest(pcrs), boot: boot! };
}
