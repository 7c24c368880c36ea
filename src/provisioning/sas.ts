/**
 * DPS shared access signatures: `SharedAccessSignature sr={sr}&sig={urlencode(base64 HMAC)}&se={expiry}&skn=registration`
 * with HMAC-SHA256(device key, sr + "\n" + se) over `sr` EXACTLY as sent: the SDKs URL-encode the
 * scope `{idScope}/registrations/{registrationId}` with different hex case (C `%2f`, C# `%2F`), so
 * the verifier never re-encodes it. The audience (the decoded `sr`) is compared separately. Pure:
 * time comes in as an argument.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { isBase64 } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import { KEY_NAME } from "./authentication-key.js";

export interface SasToken {
  /** the `sr` value as received (URL-encoded) */
  sr: string;
  sig: Buffer;
  /** the `se` value as received (decimal seconds since the epoch): signed as is */
  se: string;
  skn?: string;
}

const PREFIX = "SharedAccessSignature ";

const invalid = (message: string) => new TpmTrustError("ERR_SAS_INVALID", message);

function urlDecode(v: string, what: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    throw invalid(`the SAS token's ${what} is not valid URL encoding`);
  }
}

/** Parses an Authorization header value; ERR_SAS_INVALID for anything but a well-formed token. */
export function parseSasToken(header: string): SasToken {
  if (header.slice(0, PREFIX.length).toLowerCase() !== PREFIX.toLowerCase()) throw invalid("the Authorization header is not a SharedAccessSignature");
  const fields = new Map<string, string>();
  for (const part of header.slice(PREFIX.length).trim().split("&")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw invalid(`malformed SAS field "${part.slice(0, 16)}"`);
    const k = part.slice(0, eq).toLowerCase();
    if (fields.has(k)) throw invalid(`the SAS token names ${k} twice`);
    fields.set(k, part.slice(eq + 1));
  }
  for (const k of fields.keys()) if (!["sr", "sig", "se", "skn"].includes(k)) throw invalid(`unknown SAS field ${k}`);
  const sr = fields.get("sr");
  const sig = fields.get("sig");
  const se = fields.get("se");
  if (!sr || !sig || !se) throw invalid("the SAS token needs sr, sig and se");
  if (!/^[0-9]{1,15}$/.test(se)) throw invalid("se must be decimal seconds since the epoch");
  const sigB64 = urlDecode(sig, "sig");
  if (!isBase64(sigB64)) throw invalid("sig is not base64");
  const skn = fields.get("skn");
  return { sr, sig: Buffer.from(sigB64, "base64"), se, ...(skn !== undefined ? { skn: urlDecode(skn, "skn") } : {}) };
}

/** The bytes the device's key signs: sr (as sent) + "\n" + se. */
export function stringToSign(sr: string, se: number | string): Buffer {
  return Buffer.from(`${sr}\n${se}`, "utf8");
}

/** The audience of a registration: `{idScope}/registrations/{registrationId}` (not encoded). */
export function sasScope(idScope: string, registrationId: string): string {
  return `${idScope}/registrations/${registrationId}`;
}

/** URL-encodes a scope as the C SDK (lowercase hex, `%2f`) or the .NET SDK (uppercase, `%2F`) does. */
export function encodeSasScope(scope: string, style: "c" | "dotnet" = "c"): string {
  const enc = encodeURIComponent(scope);
  return style === "c" ? enc.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()) : enc;
}

export function formatSasToken(sr: string, sig: Uint8Array, se: number, skn = KEY_NAME): string {
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(Buffer.from(sig).toString("base64"))}&se=${se}&skn=${skn}`;
}

export interface SasExpectation {
  idScope: string;
  registrationId: string;
  /** now, ms since the epoch */
  now: number;
  /** the longest lifetime accepted (se − now), ms */
  maxLifetimeMs: number;
}

/**
 * Checks everything but the signature: skn, expiry, lifetime and audience (the decoded sr must
 * name this ID scope and registration id, compared case-insensitively as DPS ids are).
 */
export function checkSasClaims(t: SasToken, x: SasExpectation): void {
  if (t.skn !== undefined && t.skn !== KEY_NAME) throw invalid(`skn must be "${KEY_NAME}", not "${t.skn}"`);
  const expiresMs = Number(t.se) * 1000;
  if (expiresMs <= x.now) throw new TpmTrustError("ERR_SAS_EXPIRED", `the SAS token expired at ${new Date(expiresMs).toISOString()}`);
  if (expiresMs - x.now > x.maxLifetimeMs) throw invalid(`the SAS token's expiry is more than ${Math.round(x.maxLifetimeMs / 1000)} s away`);
  const audience = urlDecode(t.sr, "sr");
  if (audience.toLowerCase() !== sasScope(x.idScope, x.registrationId).toLowerCase()) {
    throw invalid(`the SAS token is for "${audience}", not for this registration`);
  }
}

/** True when `sig` is HMAC-SHA256(key, sr + "\n" + se) (constant-time compare). */
export function sasSignatureValid(t: SasToken, key: Uint8Array): boolean {
  const mac = createHmac("sha256", key).update(stringToSign(t.sr, t.se)).digest();
  return t.sig.length === mac.length && timingSafeEqual(t.sig, mac);
}
