/** Parameter pieces several commands share (Part 2 structures as they appear in Part 3 commands). */
import { TpmTrustError } from "../../errors.js";
import type { Reader, Writer } from "../marshal.js";
import { readTpm2bAttest, readTpm2bCreationData, readTpm2bPublic, readTpmtSignature, writeTpm2bPublic, writeTpmlPcrSelection } from "../structures.js";
import type { TpmsAttest, TpmsCreationData, TpmsPcrSelection, TpmtPublic, TpmtScheme, TpmtSignature } from "../types.js";
import { TPM_ALG } from "../constants.js";

export const EMPTY = Buffer.alloc(0);
export const NULL_SCHEME: TpmtScheme = { scheme: TPM_ALG.NULL };
const MAX_LIST = 1024;

/** Part 2 §10.7 tickets (TPMT_TK_CREATION, TPMT_TK_AUTH, TPMT_TK_HASHCHECK). */
export interface TpmtTicket {
  tag: number;
  hierarchy: number;
  digest: Buffer;
}

/** Part 2 §11.1.15 TPMS_SENSITIVE_CREATE */
export interface SensitiveCreate {
  userAuth?: Uint8Array;
  data?: Uint8Array;
}

export interface CreationResult {
  public: TpmtPublic;
  /** the TPMT_PUBLIC bytes exactly as the TPM returned them */
  publicArea: Buffer;
  creationData: TpmsCreationData;
  creationHash: Buffer;
  creationTicket: TpmtTicket;
}

export interface AttestResult {
  /** the signed TPMS_ATTEST bytes exactly as the TPM returned them */
  attest: Buffer;
  attested: TpmsAttest;
  signature: TpmtSignature;
  /** the TPMT_SIGNATURE bytes as returned */
  signatureBytes: Buffer;
}

/** inSensitive ‖ inPublic ‖ outsideInfo ‖ creationPCR, the parameters of TPM2_CreatePrimary and TPM2_Create. */
export function writeCreationParams(
  q: { inSensitive?: SensitiveCreate; inPublic: TpmtPublic; outsideInfo?: Uint8Array; creationPCR?: TpmsPcrSelection[] },
  w: Writer,
): void {
  const s = q.inSensitive ?? {};
  w.sized((i) => i.tpm2b(s.userAuth ?? EMPTY).tpm2b(s.data ?? EMPTY)); // Part 2 §11.1.16 TPM2B_SENSITIVE_CREATE
  writeTpm2bPublic(w, q.inPublic);
  w.tpm2b(q.outsideInfo ?? EMPTY);
  writeTpmlPcrSelection(w, q.creationPCR ?? []);
}

export function readTicket(r: Reader, what: string): TpmtTicket {
  return { tag: r.u16(`${what}.tag`), hierarchy: r.u32(`${what}.hierarchy`), digest: r.tpm2b(`${what}.digest`, 64) };
}

export function writeTicket(w: Writer, t: TpmtTicket): void {
  w.u16(t.tag).u32(t.hierarchy).tpm2b(t.digest);
}

/** A TPM2B_PUBLIC, parsed and as the exact TPMT_PUBLIC bytes. */
export function readPublicRaw(r: Reader): { public: TpmtPublic; publicArea: Buffer } {
  const start = r.offset + 2;
  const pub = readTpm2bPublic(r);
  return { public: pub, publicArea: Buffer.from(r.buf.subarray(start, r.offset)) };
}

/** creationData ‖ creationHash ‖ creationTicket */
export function readCreation(r: Reader): Omit<CreationResult, "public" | "publicArea"> {
  return { creationData: readTpm2bCreationData(r), creationHash: r.tpm2b("creationHash", 64), creationTicket: readTicket(r, "creationTicket") };
}

/** TPM2B_ATTEST ‖ TPMT_SIGNATURE, parsed and as returned. */
export function readAttest(r: Reader): AttestResult {
  const start = r.offset + 2;
  const attested = readTpm2bAttest(r);
  const attest = Buffer.from(r.buf.subarray(start, r.offset));
  const sigStart = r.offset;
  const signature = readTpmtSignature(r);
  return { attest, attested, signature, signatureBytes: Buffer.from(r.buf.subarray(sigStart, r.offset)) };
}

/** A TPML_*: u32 count, then the items. */
export function readList<T>(r: Reader, what: string, item: () => T): T[] {
  const at = r.offset;
  const n = r.u32(`${what}.count`);
  if (n > MAX_LIST) r.fail(`${what}.count`, `${n} exceeds ${MAX_LIST}`, at);
  return Array.from({ length: n }, item);
}

export function usage(message: string, details?: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError("ERR_USAGE", message, details);
}
