/**
 * Base64 and PEM, the one place tpmtrust reads and writes them (RFC 4648 §4, RFC 7468). Below every
 * layer: the agent, the server and the verifiers all use it; it imports only the error table.
 */
import { TpmTrustError } from "./errors.js";

/** Standard base64 alphabet, padded (RFC 4648 §4): the JSON schema pattern of every binary field. */
export const BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";
const BASE64_RE = new RegExp(BASE64_PATTERN);

export const isBase64 = (s: string): boolean => BASE64_RE.test(s);

/** Strict base64 (standard alphabet, padded) to bytes; ERR_VALIDATION naming the field otherwise. */
export function decodeBase64(value: unknown, field: string): Buffer {
  if (typeof value !== "string" || value.length === 0 || !BASE64_RE.test(value)) {
    throw new TpmTrustError("ERR_VALIDATION", `${field}: must be base64 (standard alphabet, padded)`, { field });
  }
  return Buffer.from(value, "base64");
}

export interface PemBlock {
  label: string;
  der: Buffer;
  /** the base64 text between the lines, as written */
  body: string;
  /** where the block starts and ends in the text */
  start: number;
  end: number;
}

// RFC 7468 §3: the END label repeats the BEGIN label; the base64 between may be wrapped anyhow.
const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** Every PEM block of a text or bundle, in order (text outside the blocks is the caller's to judge). */
export function pemBlocks(input: Uint8Array | string): PemBlock[] {
  const text = typeof input === "string" ? input : Buffer.from(input).toString("latin1");
  return [...text.matchAll(PEM_RE)].map((m) => ({
    label: m[1],
    der: Buffer.from(m[2].replace(/[^A-Za-z0-9+/=]/g, ""), "base64"),
    body: m[2],
    start: m.index!,
    end: m.index! + m[0].length,
  }));
}

/** PEM text of DER blocks under one label, 64 characters a line (RFC 7468 §2). */
export function toPem(label: string, ...ders: Uint8Array[]): string {
  return ders
    .map((der) => {
      const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
      return `-----BEGIN ${label}-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END ${label}-----\n`;
    })
    .join("");
}

/** PEM of DER certificates, in order. */
export const certificatePem = (...ders: Uint8Array[]): string => toPem("CERTIFICATE", ...ders);

/** base64url (RFC 4648 §5), padded or not, to bytes; ERR_VALIDATION naming the field otherwise. */
export function decodeBase64Url(value: unknown, field: string): Buffer {
  if (typeof value !== "string" || !/^[A-Za-z0-9_-]+={0,2}$/.test(value) || value.replace(/=+$/, "").length % 4 === 1) {
    throw new TpmTrustError("ERR_VALIDATION", `${field}: must be base64url (RFC 4648 §5)`, { field });
  }
  return Buffer.from(value.replace(/=+$/, ""), "base64url");
}
