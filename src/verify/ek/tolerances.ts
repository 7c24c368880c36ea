/**
 * Leniencies tpmtrust grants real TPM certificates. Each is taken only where strictness would break
 * real TPMs without protecting trust, and every one taken is reported with the certificate it
 * applied to (EK/AK results carry the list).
 */
export const TOLERANCES = {
  "nv-prefix": "the TCG NV header 10 01 00 ‖ u16 length before the certificate was stripped",
  "ff-padding": "0xFF padding after the certificate's DER was ignored",
  "trailing-bytes": "bytes after the certificate's DER were ignored",
  "ber-length": "a length is not minimally encoded (BER, not DER)",
  "non-minimal-serial": "the serial number INTEGER is not minimally encoded",
  "negative-serial": "the serial number is negative",
  "unsorted-rdn-set": "a multi-valued RDN's SET is not in DER order",
  "time-without-seconds": "a UTCTime omits the seconds",
  "time-fraction": "a GeneralizedTime carries fractional seconds",
  "signature-algorithm-encoding": "the two signature AlgorithmIdentifiers differ only in encoding",
  "rsa-oaep-spki": "the public key is labelled id-RSAES-OAEP; it was read as an RSA key",
  "empty-subject-noncritical-san": "the subject is empty but the subjectAltName is not critical",
  "undecodable-extension": "a non-critical extension could not be decoded and was ignored",
  "critical-certificate-policies": "a critical certificatePolicies extension was accepted without policy processing",
  "critical-policy-constraints": "a critical policy constraint extension was accepted without policy processing",
  "unknown-critical-tcg-extension": "an unknown critical extension in the TCG arc 2.23.133 was accepted",
  "sha1-signature": "the certificate is signed with SHA-1",
  "name-match-normalized": "issuer and subject names match only after case and space normalisation",
  "v1-trust-anchor": "the trust anchor is a version 1 certificate without basicConstraints",
  "eku-absent": "the leaf certificate has no extendedKeyUsage extension",
} as const;

export type ToleranceCode = keyof typeof TOLERANCES;

export interface Tolerance {
  code: ToleranceCode;
  /** which certificate: its subject, or issuer and serial when the subject is empty */
  certificate: string;
  detail?: string;
}
