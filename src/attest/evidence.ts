/**
 * receiveEvidence: turns the JSON body of POST /v1/attestations into parsed TPM structures. The
 * route's schema has already checked shapes (base64, hex, sizes); this decodes the signatures (every
 * malformed one an ERR_PARSE_* with its byte offset) and keeps each attest's raw bytes: they are
 * decoded only after their signature verified (src/verify/attestation.ts).
 */
import { createHash } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS } from "../tpm/constants.js";
import { decodeTpmtSignature } from "../tpm/structures.js";
import type { TpmtSignature } from "../tpm/types.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { bankAlg } from "../verify/attestation.js";

export interface EvidenceBody {
  akNameHex: string;
  nonceHex: string;
  quotes: { attest: string; signature: string }[];
  pcrs: Record<string, Record<string, string>>;
  eventLog?: string;
  /** instead of `eventLog`: the SHA-256 of the log this service judged before (see judge.ts) */
  eventLogSha256?: string;
  /** IMA entries from `startIndex` on (binary_runtime_measurements form, base64) */
  ima?: { startIndex: number; list: string };
}

export interface Quote {
  /** the signed bytes, exactly as received: decoded only after their signature verified */
  attestBytes: Buffer;
  signature: TpmtSignature;
}

/** TPMS_ATTEST's fixed header (magic, type) and its shortest body: fewer bytes cannot be a quote. */
const MIN_ATTEST = 6;

export interface Evidence {
  akName: Buffer;
  nonce: Buffer;
  quotes: Quote[];
  /** PCR values the host claims; only those a quote's pcrDigest covers are ever used */
  pcrs: PcrValues;
  eventLog?: Buffer;
  /** SHA-256 of the event log: computed from `eventLog`, or named by the host instead of sending it */
  eventLogSha256?: Buffer;
  ima?: { startIndex: number; bytes: Buffer };
}

/** Runs a parser and names the quote and field a parse error came from. */
function parsed<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof TpmTrustError) throw new TpmTrustError(e.code, `${what}: ${e.message}`, { ...e.details, field: what });
    throw e;
  }
}

/**
 * Strict base64 (standard alphabet, padded) without a regular expression: Node's decoder skips
 * characters outside the alphabet and accepts the URL-safe one, so a strict input is one whose
 * length is a multiple of 4, has no "-" or "_", and decodes to exactly the length its size implies.
 */
function strictBase64(s: string, field: string): Buffer {
  const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  const buf = Buffer.from(s, "base64");
  if (s.length % 4 !== 0 || s.includes("-") || s.includes("_") || buf.length !== (s.length / 4) * 3 - pad) {
    throw new TpmTrustError("ERR_VALIDATION", `${field} must be base64 (standard alphabet, padded)`, { field });
  }
  return buf;
}

export function receiveEvidence(body: EvidenceBody): Evidence {
  if (body.eventLog !== undefined && body.eventLogSha256 !== undefined) throw new TpmTrustError("ERR_VALIDATION", "send eventLog or eventLogSha256, not both");
  const eventLog = body.eventLog === undefined ? undefined : strictBase64(body.eventLog, "eventLog");
  const quotes = body.quotes.map((q, i) => {
    const attestBytes = Buffer.from(q.attest, "base64");
    if (attestBytes.length < MIN_ATTEST) throw new TpmTrustError("ERR_PARSE_TRUNCATED", `quotes[${i}].attest: ${attestBytes.length} bytes cannot be a TPMS_ATTEST`, { field: `quotes[${i}].attest` });
    return {
      attestBytes,
      signature: parsed(`quotes[${i}].signature`, () => decodeTpmtSignature(Buffer.from(q.signature, "base64"))),
    };
  });
  const pcrs: PcrValues = {};
  for (const [bank, values] of Object.entries(body.pcrs)) {
    const alg = bankAlg(bank);
    const size = alg === undefined ? undefined : HASH_ALGS[alg].size;
    if (size === undefined) throw new TpmTrustError("ERR_VALIDATION", `pcrs: unknown bank "${bank}"`, { bank });
    const out: Record<number, Buffer> = (pcrs[bank] = {});
    for (const [index, hex] of Object.entries(values)) {
      const pcr = Number(index);
      if (!/^(0|[1-9][0-9]?)$/.test(index) || pcr > 23) throw new TpmTrustError("ERR_VALIDATION", `pcrs.${bank}: "${index}" is not a PCR index 0..23`, { bank, pcr: index });
      if (hex.length !== size * 2) throw new TpmTrustError("ERR_VALIDATION", `pcrs.${bank}.${index} has ${hex.length / 2} bytes, a ${bank} PCR ${size}`, { bank, pcr });
      out[pcr] = Buffer.from(hex, "hex");
    }
  }
  const eventLogSha256 = eventLog ? createHash("sha256").update(eventLog).digest() : body.eventLogSha256 === undefined ? undefined : Buffer.from(body.eventLogSha256, "hex");
  return {
    akName: Buffer.from(body.akNameHex, "hex"),
    nonce: Buffer.from(body.nonceHex, "hex"),
    quotes,
    pcrs,
    ...(eventLog ? { eventLog } : {}),
    ...(eventLogSha256 ? { eventLogSha256 } : {}),
    ...(body.ima ? { ima: { startIndex: body.ima.startIndex, bytes: strictBase64(body.ima.list, "ima.list") } } : {}),
  };
}
