/**
 * Object identifiers of the key attestation CA. The issuance policies and request attributes are
 * Microsoft's (AD CS TPM key attestation; wincrypt.h, MS-WCCE 2.2.2.7 / 3.1.1.4.3.4).
 */
export const CA_OID = {
  /** EK verified: the EKpub is on the allow-list (AD CS "EK verified", high assurance) */
  ekKey: "1.3.6.1.4.1.311.21.30",
  /** EK certificate verified: it chains to EKROOT/EKCA (medium assurance) */
  ekCert: "1.3.6.1.4.1.311.21.31",
  /** EK trusted on use: the enrolling, authenticated user vouches for the TPM (low assurance) */
  userCredentials: "1.3.6.1.4.1.311.21.32",
  /** RFC 5280 §4.2.1.4 anyPolicy */
  anyPolicy: "2.5.29.32.0",
  /** szOID_ENROLL_ATTESTATION_STATEMENT (wincrypt.h) */
  attestationStatement: "1.3.6.1.4.1.311.21.24",
  /** the same statement under the OID MS-WCCE's text gives (wincrypt.h assigns it to SCEP errors) */
  attestationStatementWcce: "1.3.6.1.4.1.311.21.33",
  /** szOID_ENROLL_EK_INFO: CMS EnvelopedData to the CA exchange certificate (MS-WCCE 2.2.2.7.13) */
  ekInfo: "1.3.6.1.4.1.311.21.23",
  /** szOID_ENROLL_AIK_INFO (MS-WCCE 2.2.2.7.15) */
  aikInfo: "1.3.6.1.4.1.311.21.39",
  /** szOID_ENROLL_CAXCHGCERT_HASH: SHA-1 of the CA exchange certificate (MS-WCCE 2.2.2.8.1.2) */
  xchgCertHash: "1.3.6.1.4.1.311.21.27",
  /** szOID_ENROLL_ATTESTATION_CHALLENGE: the secret encrypted to the EK (MS-WCCE 2.2.2.8.1.1) */
  attestationChallenge: "1.3.6.1.4.1.311.21.28",
  /** szOID_ENROLL_ENCRYPTION_ALGORITHM: the content cipher for the answer (MS-WCCE 2.2.2.8.1.4) */
  encryptionAlgorithm: "1.3.6.1.4.1.311.21.29",
  /** szOID_ENROLL_KSP_NAME */
  kspName: "1.3.6.1.4.1.311.21.25",
  /** PKCS#9 extensionRequest */
  extensionRequest: "1.2.840.113549.1.9.14",
  /** PKCS#9 challengePassword */
  challengePassword: "1.2.840.113549.1.9.7",
} as const;

export type TrustModel = "ek-key" | "ek-cert" | "user-credentials";
export const TRUST_MODELS: readonly TrustModel[] = ["ek-key", "ek-cert", "user-credentials"];

/** The issuance policy each trust model stamps into a certificate, strongest first. */
export const POLICY_OF: Record<TrustModel, string> = {
  "ek-key": CA_OID.ekKey,
  "ek-cert": CA_OID.ekCert,
  "user-credentials": CA_OID.userCredentials,
};

/** CERTSRV_E_KEY_ATTESTATION: attestation was required and no method succeeded. */
export const HRESULT_KEY_ATTESTATION = "0x8009481A";
/** CERTSRV_E_INVALID_EK: the EK could not be validated. */
export const HRESULT_INVALID_EK = "0x80094817";
