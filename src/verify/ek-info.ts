/**
 * The decrypted EK info a Windows key attestation request carries, encrypted to the CA exchange
 * certificate (MS-WCCE 3.2.2.6.2.1.2.5 step 1). Pure.
 *
 *   EndorsementKeyInfo ::= SEQUENCE SIZE (2..5) OF ANY          (szOID_ENROLL_EK_INFO, MS-WCCE 2.2.2.7.13)
 *     [0] SubjectPublicKeyInfo of the EKpub; [1] the manufacturer EK certificate, or NULL (05 00);
 *     [2..4] further EK certificates (at most three certificates in all).
 */
import { createPublicKey } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { children, readTlv, whole } from "./ek/der.js";

export interface HardwareKeyInfo {
  /** DER SubjectPublicKeyInfo of the EKpub */
  publicKey: Buffer;
  /** DER certificates, in the order sent */
  certificates: Buffer[];
}

function bad(what: string, message: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_FORMAT", `${what}: ${message}`);
}

export function parseEkInfo(der: Uint8Array): HardwareKeyInfo {
  const what = "EndorsementKeyInfo";
  const buf = Buffer.from(der);
  let items;
  try {
    const outer = readTlv(buf, 0);
    if (outer.tag !== 0x30) throw bad(what, "not a SEQUENCE");
    if (outer.end !== buf.length) throw new TpmTrustError("ERR_PARSE_TRAILING_BYTES", `${what}: ${buf.length - outer.end} bytes after the SEQUENCE`, { offset: outer.end });
    items = children(buf, outer);
  } catch (e) {
    if (e instanceof TpmTrustError && e.code !== "ERR_PARSE_CERT") throw e;
    throw bad(what, (e as Error).message);
  }
  if (items.length < 2 || items.length > 5) throw bad(what, `holds ${items.length} elements, not 2 to 5`);
  const publicKey = whole(buf, items[0]);
  try {
    createPublicKey({ key: publicKey, format: "der", type: "spki" });
  } catch (e) {
    // MS-WCCE 3.2.2.6.2.1.2.5 step 2: the key must load
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `${what}: the first element is not a usable SubjectPublicKeyInfo (${(e as Error).message})`);
  }
  const certificates: Buffer[] = [];
  items.slice(1).forEach((t, i) => {
    if (i === 0 && t.tag === 0x05 && t.end === t.contentStart) return;
    if (t.tag !== 0x30) throw bad(what, `element ${i + 1} is neither a certificate nor NULL`);
    certificates.push(whole(buf, t));
  });
  return { publicKey, certificates };
}
