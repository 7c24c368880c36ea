/**
 * Certificate signature verification over the exact TBSCertificate bytes with node:crypto:
 * RSA PKCS#1 v1.5 (RFC 8017 §8.2), RSASSA-PSS (RFC 4055 §3.1 parameters) and ECDSA (RFC 5758 §3.2).
 */
import { constants, verify, type KeyObject } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { AsnConvert } from "@peculiar/asn1-schema";
import { RsaSaPssParams } from "@peculiar/asn1-rsa";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import type { ParsedCertificate } from "./certificate.js";
import { OID } from "./oids.js";

const HASHES: Record<string, string> = {
  [OID.sha1]: "sha1",
  [OID.sha224]: "sha224",
  [OID.sha256]: "sha256",
  [OID.sha384]: "sha384",
  [OID.sha512]: "sha512",
};
/** PKCS#1 v1.5 (RFC 8017 §A.2.4) and ECDSA (RFC 5758 §3.2) signature algorithms: key type and digest. */
const SIGNATURES: Record<string, { key: "rsa" | "ec"; hash: string }> = {
  [OID.sha1WithRSA]: { key: "rsa", hash: "sha1" },
  [OID.sha224WithRSA]: { key: "rsa", hash: "sha224" },
  [OID.sha256WithRSA]: { key: "rsa", hash: "sha256" },
  [OID.sha384WithRSA]: { key: "rsa", hash: "sha384" },
  [OID.sha512WithRSA]: { key: "rsa", hash: "sha512" },
  [OID.ecdsaWithSha1]: { key: "ec", hash: "sha1" },
  [OID.ecdsaWithSha224]: { key: "ec", hash: "sha224" },
  [OID.ecdsaWithSha256]: { key: "ec", hash: "sha256" },
  [OID.ecdsaWithSha384]: { key: "ec", hash: "sha384" },
  [OID.ecdsaWithSha512]: { key: "ec", hash: "sha512" },
};

function invalid(cert: ParsedCertificate, message: string): TpmTrustError {
  return new TpmTrustError("ERR_CHAIN_INVALID", `${cert.label}: ${message}`, { certificate: cert.label, algorithm: cert.signatureAlgorithm.oid });
}

/** RSASSA-PSS-params (RFC 4055 §3.1); absent or NULL parameters are the defaults (SHA-1, MGF1-SHA-1, salt 20, trailer 1). */
function pssParams(cert: ParsedCertificate): { hash: string; saltLength: number } {
  const p = cert.signatureAlgorithm.parameters;
  let hash: string | undefined;
  let mgfHash: string | undefined;
  let saltLength: number;
  try {
    const params = p && !(p.length === 2 && p[0] === 0x05) ? AsnConvert.parse(p, RsaSaPssParams) : new RsaSaPssParams();
    const mgf = params.maskGenAlgorithm;
    if (mgf.algorithm !== OID.mgf1 || !mgf.parameters) throw new Error("mask generation is not MGF1");
    if (!Number.isSafeInteger(params.saltLength) || params.saltLength < 0) throw new Error("bad saltLength");
    if (params.trailerField !== 1) throw new Error("trailerField is not 1");
    hash = HASHES[params.hashAlgorithm.algorithm];
    mgfHash = HASHES[AsnConvert.parse(mgf.parameters, AlgorithmIdentifier).algorithm];
    saltLength = params.saltLength;
  } catch (e) {
    throw invalid(cert, `bad RSASSA-PSS parameters: ${(e as Error).message}`);
  }
  if (!hash || hash !== mgfHash) throw invalid(cert, "RSASSA-PSS with an unsupported hash or an MGF1 hash other than the message hash");
  return { hash, saltLength };
}

/**
 * True when `issuerKey` signed `cert`. Unsupported or mismatched algorithms are ERR_CHAIN_INVALID.
 * `hash` names the digest used, so callers can report SHA-1.
 */
export function verifyCertificateSignature(cert: ParsedCertificate, issuerKey: KeyObject): { valid: boolean; hash: string } {
  const { hash, options } = scheme(cert, issuerKey);
  let valid: boolean;
  try {
    valid = verify(hash, cert.tbs, { key: issuerKey, ...options }, cert.signature);
  } catch {
    valid = false; // a signature value node:crypto cannot even decode does not verify
  }
  return { valid, hash };
}

/** Digest and node:crypto options for the certificate's signature algorithm, checked against the issuer's key type. */
function scheme(cert: ParsedCertificate, issuerKey: KeyObject): { hash: string; options: { padding?: number; saltLength?: number } } {
  const oid = cert.signatureAlgorithm.oid;
  const keyType = issuerKey.asymmetricKeyType;
  const plain = SIGNATURES[oid];
  if (plain) {
    if (keyType !== plain.key) throw invalid(cert, `an ${plain.key === "rsa" ? "RSA" : "ECDSA"} signature, but the issuer key is ${keyType}`);
    return { hash: plain.hash, options: plain.key === "rsa" ? { padding: constants.RSA_PKCS1_PADDING } : {} };
  }
  if (oid === OID.rsassaPss) {
    if (keyType !== "rsa" && keyType !== "rsa-pss") throw invalid(cert, `an RSA-PSS signature, but the issuer key is ${keyType}`);
    const { hash, saltLength } = pssParams(cert);
    return { hash, options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength } };
  }
  throw invalid(cert, `unsupported signature algorithm ${oid}`);
}
