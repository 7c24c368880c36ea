/** EK and AK certificate trust: loading, EK hashes, chain validation, trust anchors, EK trust methods. */
export { loadCertificate, loadCertificates, parseCertificateDer, certificatePublicKey } from "./certificate.js";
export type { ParsedCertificate, CertificateExtension } from "./certificate.js";
export type { TcgFacts, TpmSpecification } from "./extensions.js";
export type { DistinguishedName, NameAttribute } from "./names.js";
export { ekHash, ekHashFromCertificate, ekHashInput, isEkHash } from "./hash.js";
export { validateChain, isSelfSigned, EKU_EK_CERTIFICATE, EKU_PLATFORM_CERTIFICATE, EKU_AIK_CERTIFICATE } from "./chain.js";
export type { ChainOptions, ChainResult } from "./chain.js";
export { classifyCertificates, roleFromPath } from "./anchors.js";
export type { AnchorRole, TrustAnchors } from "./anchors.js";
export { evaluateEkTrust, requireEkTrust } from "./trust.js";
export type { EkTrustInput, EkTrustResult, EkTrustMethod, MethodOutcome, EkCertificateOutcome } from "./trust.js";
export { TOLERANCES } from "./tolerances.js";
export type { Tolerance, ToleranceCode } from "./tolerances.js";
export { OID } from "./oids.js";
