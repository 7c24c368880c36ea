/**
 * The decrypted hardware key info a Windows key attestation request carries, encrypted to the CA
 * exchange certificate (MS-WCCE 3.2.2.6.2.1.2.5 step 1: Client_HardwareKeyInfo). Pure.
 *
 *   EndorsementKeyInfo ::= SEQUENCE SIZE (2..5) OF ANY          (szOID_ENROLL_EK_INFO, MS-WCCE 2.2.2.7.13)
 *     [0] SubjectPublicKeyInfo of the EKpub; [1] the manufacturer EK certificate, or NULL (05 00);
 *     [2..4] further EK certificates (at most three certificates in all).
 *   AttestationIdentityKeyInfo ::= SEQUENCE SIZE (1..2) OF ANY  (szOID_ENROLL_AIK_INFO, MS-WCCE 2.2.2.7.15)
 *     [0] SubjectPublicKeyInfo of the AIKpub; [1] the AIK certificate, when there is one (at most one).
 */
import { createPublicKey } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { children, readTlv, whole, type Tlv } from "./ek/der.js";

export interface HardwareKeyInfo {
  /** DER SubjectPublicKeyInfo of the EKpub */
  publicKey: Buffer;
  /** DER certificates, in the order sent */
  certificates: Buffer[];
}

function bad(what: string, message: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_FORMAT", `${what}: ${message}`);
}

/** The AIK info: its public key and at most one certificate. */
export interface AikInfo {
  /** DER SubjectPublicKeyInfo of the AIKpub */
  publicKey: Buffer;
  /** DER AIK certificate, or null when none was sent */
  certificate: Buffer | null;
}

/** The elements of `what`, a DER SEQUENCE OF ANY of `min`..`max` elements with nothing after it. */
function sequenceOf(buf: Buffer, what: string, min: number, max: number): Tlv[] {
  let items: Tlv[];
  try {
    const outer = readTlv(buf, 0);
    if (outer.tag !== 0x30) throw bad(what, "not a SEQUENCE");
    if (outer.end !== buf.length) throw new TpmTrustError("ERR_PARSE_TRAILING_BYTES", `${what}: ${buf.length - outer.end} bytes after the SEQUENCE`, { offset: outer.end });
    items = children(buf, outer);
  } catch (e) {
    if (e instanceof TpmTrustError && e.code !== "ERR_PARSE_CERT") throw e;
    throw bad(what, (e as Error).message);
  }
  if (items.length < min || items.length > max) throw bad(what, `holds ${items.length} elements, not ${min} to ${max}`);
  return items;
}

/** The first element: a SubjectPublicKeyInfo that loads (MS-WCCE 3.2.2.6.2.1.2.5 step 2). */
function trustModuleKey(buf: Buffer, item: Tlv, what: string): Buffer {
  const publicKey = whole(buf, item);
  try {
    createPublicKey({ key: publicKey, format: "der", type: "spki" });
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `${what}: the first element is not a usable SubjectPublicKeyInfo (${(e as Error).message})`);
  }
  return publicKey;
}

export function parseEkInfo(der: Uint8Array): HardwareKeyInfo {
  const what = "EndorsementKeyInfo";
  const buf = Buffer.from(der);
  const items = sequenceOf(buf, what, 2, 5);
  const publicKey = trustModuleKey(buf, items[0], what);
  const certificates: Buffer[] = [];
  items.slice(1).forEach((t, i) => {
    if (i === 0 && t.tag === 0x05 && t.end === t.contentStart) return;
    if (t.tag !== 0x30) throw bad(what, `element ${i + 1} is neither a certificate nor NULL`);
    certificates.push(whole(buf, t));
  });
  return { publicKey, certificates };
}

export function parseAikInfo(der: Uint8Array): AikInfo {
  const what = "AttestationIdentityKeyInfo";
  const buf = Buffer.from(der);
  const items = sequenceOf(buf, what, 1, 2);
  const publicKey = trustModuleKey(buf, items[0], what);
  if (items[1] && items[1].tag !== 0x30) throw bad(what, "the second element is not a certificate");
  return { publicKey, certificate: items[1] ? whole(buf, items[1]) : null };
}
