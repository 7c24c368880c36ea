/**
 * Quote verification (TPM 2.0 Part 3 §18.4 TPM2_Quote): a pure function over the attestation bytes,
 * the signature, the AK, the expected nonce and (optionally) the PCR values claimed for the quote.
 * Order: structure → AK properties → signature → nonce → PCR digest; the first failure is returned.
 */
import { timingSafeEqual } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, TPM_ALG, TPM_ST } from "../tpm/constants.js";
import { hashOf, selectedPcrs } from "../tpm/structures.js";
import type { QuoteAttest, TpmsAttest, TpmsPcrSelection, TpmtSignature } from "../tpm/types.js";
import { verifySignature } from "../crypto/signature.js";
import { isTpmtPublic, type PublicKeyInput } from "../crypto/keys.js";
import { checkAkAttributes } from "./keyattrs.js";
import type { PcrValues } from "./eventlog/types.js";

export interface QuoteInput {
  /** The signed bytes: the marshalled TPMS_ATTEST exactly as the TPM produced it. */
  attestBytes: Uint8Array;
  attest: TpmsAttest;
  signature: TpmtSignature;
  /** The AK: its public area when known (then its attributes are checked), else a key. */
  ak: PublicKeyInput;
  nonce?: Uint8Array;
  pcrs?: PcrValues;
}

export interface QuoteFacts {
  pcrSelect: { bank: string; pcrs: number[] }[];
  pcrDigest: Buffer;
  /** The PCR values that were checked against pcrDigest, in quote order. */
  verifiedPcrs?: PcrValues;
}

/** Throws a TpmTrustError (ERR_ATTEST_TYPE, ERR_KEY_*, ERR_SIGNATURE_*, ERR_NONCE_MISMATCH, ERR_PCR_*) or returns the quote's facts. */
export function verifyQuote(input: QuoteInput): QuoteFacts {
  const { attest } = input;
  if (attest.type !== TPM_ST.ATTEST_QUOTE) {
    throw new TpmTrustError("ERR_ATTEST_TYPE", `expected TPM_ST_ATTEST_QUOTE (0x8018), got 0x${attest.type.toString(16)}`, { type: attest.type });
  }
  if (isTpmtPublic(input.ak)) checkAkAttributes(input.ak);
  verifySignature(input.signature, input.attestBytes, input.ak);
  checkNonce(attest, input.nonce);
  const facts: QuoteFacts = { pcrSelect: describeSelection(attest.attested.pcrSelect), pcrDigest: attest.attested.pcrDigest };
  if (input.pcrs) facts.verifiedPcrs = checkPcrDigest(attest, input.signature, input.pcrs);
  return facts;
}

export function checkNonce(attest: TpmsAttest, nonce: Uint8Array | undefined): void {
  if (nonce === undefined) return;
  const got = attest.extraData;
  if (got.length !== nonce.length || !timingSafeEqual(got, nonce)) {
    throw new TpmTrustError("ERR_NONCE_MISMATCH", "extraData does not equal the expected nonce", {
      expected: Buffer.from(nonce).toString("hex"),
      actual: got.toString("hex"),
    });
  }
}

export function describeSelection(sel: TpmsPcrSelection[]): { bank: string; pcrs: number[] }[] {
  return sel.map((s) => ({ bank: HASH_ALGS[s.hash]?.name ?? `0x${s.hash.toString(16)}`, pcrs: selectedPcrs(s) }));
}

/**
 * pcrDigest = H(PCR values concatenated in selection order), H being the signing scheme's hash,
 * not the bank's (Part 3 §18.4.1; real quotes of the SHA-1 bank are digested with SHA-256).
 */
export function checkPcrDigest(attest: QuoteAttest, signature: TpmtSignature, pcrs: PcrValues): PcrValues {
  const digestAlg = "hash" in signature ? signature.hash : TPM_ALG.SHA256;
  const parts: Buffer[] = [];
  const used: PcrValues = {};
  for (const sel of attest.attested.pcrSelect) {
    const h = HASH_ALGS[sel.hash];
    if (!h) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `quote selects unknown bank 0x${sel.hash.toString(16)}`);
    for (const pcr of selectedPcrs(sel)) {
      const v = pcrs[h.name]?.[pcr];
      if (!v) throw new TpmTrustError("ERR_PCR_SELECTION_MISMATCH", `no value given for quoted PCR ${h.name}:${pcr}`, { bank: h.name, pcr });
      parts.push(v);
      (used[h.name] ??= {})[pcr] = v;
    }
  }
  const computed = hashOf(digestAlg, ...parts);
  if (!computed.equals(attest.attested.pcrDigest)) {
    throw new TpmTrustError("ERR_PCR_DIGEST_MISMATCH", "the PCR values do not hash to the quoted pcrDigest", {
      expected: attest.attested.pcrDigest.toString("hex"),
      computed: computed.toString("hex"),
    });
  }
  return used;
}
