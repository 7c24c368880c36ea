/**
 * The quotes of one attestation (see attestation.ts): each signed by the AK over the nonce, its
 * pcrDigest covering the claimed PCR values, all from one boot. Apart from the event log, so that a
 * check of quotes alone (`tpmtrust verify quote` without --eventlog) loads no event-log code.
 */
import { createHash, type KeyObject } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, TPM_GENERATED_VALUE, TPM_ST } from "../tpm/constants.js";
import { decodeTpmsAttest } from "../tpm/structures.js";
import type { QuoteAttest, TpmsAttest, TpmsPcrSelection, TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { verifySignature } from "../crypto/signature.js";
import type { EventLog, PcrValues } from "./eventlog/types.js";
import { checkAkAttributes } from "./keyattrs.js";
import { checkNonce, checkPcrDigest, describeSelection } from "./quote.js";

export type Selection = { bank: string; pcrs: number[] }[];

export interface SignedQuote {
  /** the signed bytes: the marshalled TPMS_ATTEST exactly as the TPM produced it */
  attestBytes: Uint8Array;
  signature: TpmtSignature;
}

/** AK attributes that were not checked because only a bare key was given. */
export type UncheckedAkAttribute = "restricted" | "fixedTPM";

/**
 * The AK: its public area (its attributes are checked), or a bare key whose TPM attributes someone
 * vouches for: an AK certificate (EKU 2.23.133.8.3) that chained to trusted roots, or the caller.
 */
export type AttestationKey = TpmtPublic | { key: KeyObject; vouchedBy: "ak-certificate" | "caller" };

/** Claimed PCR values, or how to read them given a verified quote's selection (e.g. a file of bare values). */
export type PcrClaim = PcrValues | ((selection: TpmsPcrSelection[]) => PcrValues);

export interface AttestationEvidence {
  quotes: readonly SignedQuote[];
  /** the expected qualifying data (the service's single-use nonce) */
  nonce?: Uint8Array;
  /** PCR values claimed for the quotes (or read once a quote's selection is known); absent: the event log's replay is the claim */
  pcrs?: PcrClaim;
  /** the TCG event log; null: the host sent none (only PCRs at their reset value are explained); absent: not judged */
  eventLog?: Uint8Array | EventLog | null;
}

export interface QuotedPcrs {
  attests: TpmsAttest[];
  pcrSelect: Selection;
  /** PCR values covered by a verified quote's pcrDigest: the only PCR values to trust (empty when none were claimed) */
  pcrs: PcrValues;
  /** SHA-256 over `pcrs` in canonical order (banks by TPM_ALG_ID, PCRs ascending) */
  pcrDigest: Buffer;
  /** resetCount/restartCount of the boot the quotes were taken in */
  boot: { resetCount: number; restartCount: number; firmwareVersion: string };
  /** AK attributes not checked (a bare key vouched for by the caller) */
  unchecked: UncheckedAkAttribute[];
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

/**
 * Verify, then parse: TPM_GENERATED_VALUE (bytes 0–3, Part 2 §10.12.12), the AK's attributes, the
 * signature over the raw bytes; only then the structure is decoded (tampered bytes are
 * ERR_SIGNATURE_INVALID, never a parse error), its type, the nonce, and the PCR digest.
 */
function verifyOne(q: SignedQuote, ak: AttestationKey, nonce: Uint8Array | undefined, pcrs: PcrClaim | undefined): { attest: QuoteAttest; verified?: PcrValues } {
  const bytes = Buffer.from(q.attestBytes.buffer, q.attestBytes.byteOffset, q.attestBytes.byteLength);
  if (bytes.length < 4 || bytes.readUInt32BE(0) !== TPM_GENERATED_VALUE) {
    throw new TpmTrustError("ERR_MAGIC", `magic is not TPM_GENERATED_VALUE (0xff544347)${bytes.length >= 4 ? `: 0x${bytes.readUInt32BE(0).toString(16)}` : ""}`);
  }
  const key = "key" in ak ? ak.key : ak;
  if (!("key" in ak)) checkAkAttributes(ak);
  verifySignature(q.signature, bytes, key);
  const attest = decodeTpmsAttest(bytes);
  if (attest.type !== TPM_ST.ATTEST_QUOTE) {
    throw new TpmTrustError("ERR_ATTEST_TYPE", `expected TPM_ST_ATTEST_QUOTE (0x8018), got 0x${attest.type.toString(16)}`, { type: attest.type });
  }
  checkNonce(attest, nonce);
  if (!pcrs) return { attest };
  return { attest, verified: checkPcrDigest(attest, q.signature, typeof pcrs === "function" ? pcrs(attest.attested.pcrSelect) : pcrs) };
}

/**
 * Every quote signed by the AK over the nonce, its pcrDigest covering the claimed PCR values; all
 * from one boot of one TPM; together (when PCR values were claimed) covering `required`.
 * Errors name the quote (details.quote): ERR_MAGIC, ERR_KEY_*, ERR_SIGNATURE_*, ERR_PARSE_*,
 * ERR_ATTEST_TYPE, ERR_NONCE_MISMATCH, ERR_PCR_DIGEST_MISMATCH, ERR_PCR_SELECTION_MISMATCH,
 * ERR_QUOTES_INCONSISTENT.
 */
export function verifyQuoteSet(ev: Pick<AttestationEvidence, "quotes" | "nonce" | "pcrs">, ak: AttestationKey, required: Selection | "quoted"): QuotedPcrs {
  if (ev.quotes.length === 0) throw new TpmTrustError("ERR_VALIDATION", "no quote");
  const pcrs: PcrValues = {};
  const attests: TpmsAttest[] = [];
  const pcrSelect: Selection = [];
  let boot: QuotedPcrs["boot"] | undefined;
  ev.quotes.forEach((q, i) => {
    let one: ReturnType<typeof verifyOne>;
    try {
      one = verifyOne(q, ak, ev.nonce, ev.pcrs);
    } catch (e) {
      if (e instanceof TpmTrustError) throw new TpmTrustError(e.code, `quotes[${i}]: ${e.message}`, { ...e.details, quote: i });
      throw e;
    }
    const a = one.attest;
    const b = { resetCount: a.clockInfo.resetCount, restartCount: a.clockInfo.restartCount, firmwareVersion: a.firmwareVersion.toString(16) };
    if (boot && (boot.resetCount !== b.resetCount || boot.restartCount !== b.restartCount || boot.firmwareVersion !== b.firmwareVersion)) {
      throw new TpmTrustError("ERR_QUOTES_INCONSISTENT", `quotes[${i}] was taken in another boot or firmware than quotes[0]`, { quote: i, expected: boot, actual: b });
    }
    boot = b;
    attests.push(a);
    pcrSelect.push(...describeSelection(a.attested.pcrSelect));
    for (const [bank, values] of Object.entries(one.verified ?? {})) Object.assign((pcrs[bank] ??= {}), values);
  });
  if (ev.pcrs) {
    for (const { bank, pcrs: want } of required === "quoted" ? pcrSelect : required) {
      const missing = want.filter((p) => !pcrs[bank]?.[p]);
      if (missing.length) {
        throw new TpmTrustError("ERR_PCR_SELECTION_MISMATCH", `the quotes do not cover ${bank} PCR ${missing.join(", ")}, which the host's policies require`, { bank, pcrs: missing });
      }
    }
  }
  return { attests, pcrSelect, pcrs, pcrDigest: compositeDigest(pcrs), boot: boot!, unchecked: "key" in ak && ak.vouchedBy === "caller" ? ["restricted", "fixedTPM"] : [] };
}
