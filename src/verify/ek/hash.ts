/**
 * The EK hash: the name of an EKpub in an AD CS allow-list directory and what Windows'
 * `(Get-TpmEndorsementKeyInfo -HashAlgorithm sha256).PublicKeyHash` prints.
 *
 * RSA: SHA-256 of the DER PKCS#1 RSAPublicKey { n, e } (RFC 8017 §A.1.1) — the contents of the
 * SubjectPublicKeyInfo BIT STRING, 270 bytes for RSA-2048; not the SPKI, not the modulus, not the
 * TPM2B_PUBLIC. ECC (Windows has no rule): by the same logic, SHA-256 of the SPKI BIT STRING
 * contents, the uncompressed point 04 ‖ x ‖ y (SEC 1 §2.3.3) with x, y padded to the curve size.
 * Always 64 lowercase hex digits.
 */
import { createHash, type KeyObject } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { toPublicKey, type PublicKeyInput } from "../../crypto/keys.js";
import { certificatePublicKey, type ParsedCertificate } from "./certificate.js";

const CURVE_SIZE: Record<string, number> = { "P-256": 32, "P-384": 48, "P-521": 66 };

/** The bytes the EK hash is taken over (RSAPublicKey DER, or the uncompressed EC point). */
export function ekHashInput(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === "rsa") return key.export({ type: "pkcs1", format: "der" });
  if (key.asymmetricKeyType === "ec") {
    const jwk = key.export({ format: "jwk" });
    const size = CURVE_SIZE[jwk.crv ?? ""];
    if (!size) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `EC curve ${jwk.crv} is not supported for EK hashes`);
    const pad = (v: string) => {
      const b = Buffer.from(v, "base64url");
      return Buffer.concat([Buffer.alloc(size - b.length), b]);
    };
    return Buffer.concat([Buffer.from([0x04]), pad(jwk.x!), pad(jwk.y!)]);
  }
  throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `a ${key.asymmetricKeyType ?? "non-asymmetric"} key is not an EK`);
}

// once per key: judging an EK hashes the certificate's key and the TPM's, most often one KeyObject
const hashes = new WeakMap<KeyObject, string>();
function hashOf(key: KeyObject): string {
  let h = hashes.get(key);
  if (h === undefined) hashes.set(key, (h = createHash("sha256").update(ekHashInput(key)).digest("hex")));
  return h;
}

/** EK hash of a public key: TPMT_PUBLIC, KeyObject, or SPKI as DER bytes or PEM text. */
export function ekHash(key: PublicKeyInput): string {
  return hashOf(toPublicKey(key));
}

/** EK hash of the key an EK certificate certifies. */
export function ekHashFromCertificate(cert: ParsedCertificate): string {
  return hashOf(certificatePublicKey(cert));
}

/** True when `s` looks like an EK hash (64 hex digits, any case). */
export function isEkHash(s: string): boolean {
  return /^[0-9a-fA-F]{64}$/.test(s);
}
