/**
 * Off-chip EK certificates of firmware TPMs: Intel PTT and AMD fTPM keep no EK certificate in NV;
 * their makers publish it at a URL derived from the EK public key. The derivations follow
 * tpm2-tools (tools/tpm2_getekcertificate.c: hash_ek_public, encode_ek_public_intel/_amd) and
 * go-attestation (attest/tpm.go: intelEKURL, amdEKURL); test/fixtures/offchip-ek/ holds their
 * published examples.
 */
import { createHash } from "node:crypto";
import { decodeBase64Url, pemBlocks } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import { TPM_ALG } from "../tpm/constants.js";
import type { TpmtPublic } from "../tpm/types.js";

export type OffChipVendor = "intel" | "amd";

/** The makers' EK certificate services (the base URLs both projects use). */
const OFFCHIP_SERVICES: Record<OffChipVendor, string> = {
  intel: "https://ekop.intel.com/ekcertservice/",
  amd: "https://ftpm.amd.com/pki/aia/",
};

/** TPM_PT_MANUFACTURER values (TCG Vendor ID Registry): "INTC", "AMD\0". */
const MANUFACTURERS: Record<number, OffChipVendor> = { 0x494e5443: "intel", 0x414d4400: "amd" };

/** The off-chip service of a TPM maker, if it has one. */
export const offChipVendor = (manufacturerId: number): OffChipVendor | undefined => MANUFACTURERS[manufacturerId >>> 0];

/**
 * The last path segment of the EK certificate's URL at the maker's service.
 *  - Intel: SHA-256(modulus ‖ 01 00 01) for RSA, SHA-256(x ‖ y) for ECC; base64url with its
 *    padding, percent-encoded ('=' → %3D). Only the default exponent is defined.
 *  - AMD: SHA-256(00 00 22 22 ‖ u32 exponent ‖ modulus) for RSA, SHA-256(00 00 44 44 ‖ x ‖ y)
 *    for ECC; the first 16 bytes in hex. go-attestation writes upper case (its example URL from a
 *    real fTPM), tpm2-tools lower case: both are returned, upper case first.
 */
export function offChipEkCertPaths(pub: TpmtPublic, vendor: OffChipVendor): string[] {
  const h = createHash("sha256");
  if (vendor === "intel") {
    if (pub.type === TPM_ALG.RSA) {
      if ((pub.parameters.exponent || 0x10001) !== 0x10001) throw new TpmTrustError("ERR_VALIDATION", "Intel's EK certificate service knows only EKs with the default RSA exponent");
      h.update(pub.unique).update(Buffer.from([0x01, 0x00, 0x01]));
    } else if (pub.type === TPM_ALG.ECC) h.update(pub.unique.x).update(pub.unique.y);
    else throw new TpmTrustError("ERR_VALIDATION", "an EK is an RSA or ECC key");
    // base64 with the URL-safe alphabet but its padding kept, as both projects send it
    return [encodeURIComponent(h.digest("base64").replace(/\+/g, "-").replace(/\//g, "_"))];
  }
  if (pub.type === TPM_ALG.RSA) {
    const e = Buffer.alloc(4);
    e.writeUInt32BE(pub.parameters.exponent || 0x10001); // 0 is the default, 2^16 + 1
    h.update(Buffer.from([0x00, 0x00, 0x22, 0x22])).update(e).update(pub.unique);
  } else if (pub.type === TPM_ALG.ECC) h.update(Buffer.from([0x00, 0x00, 0x44, 0x44])).update(pub.unique.x).update(pub.unique.y);
  else throw new TpmTrustError("ERR_VALIDATION", "an EK is an RSA or ECC key");
  const hex = h.digest().subarray(0, 16).toString("hex");
  return [hex.toUpperCase(), hex];
}

/** The URLs to ask, in order: the service (or `base`, e.g. a mirror) joined with each path. */
export function offChipEkCertUrls(pub: TpmtPublic, vendor: OffChipVendor, base: string = OFFCHIP_SERVICES[vendor]): string[] {
  const dir = base.endsWith("/") ? base : `${base}/`;
  return offChipEkCertPaths(pub, vendor).map((p) => dir + p);
}

/**
 * The DER certificate in a service's answer: DER itself (AMD), PEM, or Intel's JSON object whose
 * `certificate` member is the DER in base64url (tpm2-tools reads the same member).
 */
export function certificateFromOffChipAnswer(body: Uint8Array): Buffer {
  const buf = Buffer.from(body);
  if (buf[0] === 0x30) return buf;
  const text = buf.toString("utf8").trim();
  const pem = pemBlocks(text).find((b) => b.label === "CERTIFICATE");
  if (pem) return pem.der;
  if (text.startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new TpmTrustError("ERR_PARSE_CERT", "the EK certificate service answered JSON that does not parse");
    }
    const cert = (json as { certificate?: unknown }).certificate;
    if (typeof cert !== "string") throw new TpmTrustError("ERR_PARSE_CERT", "the EK certificate service's JSON has no certificate member");
    try {
      return decodeBase64Url(cert, "certificate");
    } catch {
      throw new TpmTrustError("ERR_PARSE_CERT", "the EK certificate service's certificate member is not base64url");
    }
  }
  throw new TpmTrustError("ERR_PARSE_CERT", "the EK certificate service's answer is neither DER, PEM nor JSON with a certificate");
}
