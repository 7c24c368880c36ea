/**
 * Certificate path building and validation for EK, platform and AK certificates (RFC 5280 §6.1,
 * without policy processing), at an injected time. Strict where it protects trust: signatures,
 * names, CA flags and path lengths, keyCertSign, validity of every certificate, the leaf's EKU when
 * present, the leaf's key. Tolerant where strictness only breaks real TPMs, and every tolerance used
 * is reported.
 */
import type { KeyObject } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { toPublicKey, type PublicKeyInput } from "../../crypto/keys.js";
import { certificatePublicKey, type ParsedCertificate } from "./certificate.js";
import { compareNames } from "./names.js";
import { OID } from "./oids.js";
import { verifyCertificateSignature } from "./signature.js";
import type { Tolerance } from "./tolerances.js";

export const EKU_EK_CERTIFICATE = OID.ekCertificate;
export const EKU_PLATFORM_CERTIFICATE = OID.platformCertificate;
export const EKU_AIK_CERTIFICATE = OID.aikCertificate;

export interface ChainOptions {
  leaf: ParsedCertificate;
  /** certificates that may complete the path: the store's EKCA plus those the client sent */
  intermediates?: readonly ParsedCertificate[];
  /** trust anchors (EKROOT); an anchor need not be self-signed */
  roots: readonly ParsedCertificate[];
  /** the time every certificate must be valid at */
  at: Date;
  /** an EKU the leaf must list when it has an extendedKeyUsage extension, e.g. EKU_EK_CERTIFICATE */
  requiredEku?: string;
  /** the key the leaf must certify (the TPM's EK or AK); ERR_KEY_MISMATCH otherwise */
  expectedKey?: PublicKeyInput;
  /** accept SHA-1 signatures, reported as the tolerance sha1-signature (default true: real vendor CAs use them) */
  allowSha1?: boolean;
}

export interface ChainResult {
  /** leaf first, trust anchor last */
  path: ParsedCertificate[];
  anchor: ParsedCertificate;
  /** every leniency taken, parse-time ones of the path's certificates included */
  tolerances: Tolerance[];
}

const MAX_PATH = 8;

/** Self-issued (RFC 5280 §3.1: subject = issuer) and signed by its own key. */
export function isSelfSigned(cert: ParsedCertificate): boolean {
  if (compareNames(cert.issuer, cert.subject) === false) return false;
  try {
    return verifyCertificateSignature(cert, certificatePublicKey(cert)).valid;
  } catch {
    return false;
  }
}

function sameCert(a: ParsedCertificate, b: ParsedCertificate): boolean {
  return a.der.equals(b.der);
}

function chainError(code: "ERR_CHAIN_INVALID" | "ERR_CHAIN_UNTRUSTED", cert: ParsedCertificate, message: string, details: Record<string, unknown> = {}): TpmTrustError {
  return new TpmTrustError(code, `${cert.label}: ${message}`, { certificate: cert.label, ...details });
}

function checkValidity(cert: ParsedCertificate, at: Date): void {
  if (at < cert.notBefore || at > cert.notAfter) {
    const when = at < cert.notBefore ? "not yet valid" : "expired";
    throw new TpmTrustError("ERR_CERT_EXPIRED", `${cert.label}: ${when} at ${at.toISOString()} (valid ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()})`, {
      certificate: cert.label,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
      at: at.toISOString(),
    });
  }
}

function criticalExtensions(cert: ParsedCertificate, tolerances: Tolerance[]): void {
  for (const oid of cert.unprocessedCritical) {
    if (oid.startsWith(`${OID.tcgArc}.`)) tolerances.push({ code: "unknown-critical-tcg-extension", certificate: cert.label, detail: oid });
    else throw chainError("ERR_CHAIN_INVALID", cert, `unsupported critical extension ${oid}`, { extension: oid });
  }
}

/** Checks on the leaf that do not depend on the path. */
function checkLeaf(opts: ChainOptions, tolerances: Tolerance[]): void {
  const { leaf } = opts;
  if (opts.expectedKey !== undefined) {
    const expected: KeyObject = toPublicKey(opts.expectedKey);
    const key = certificatePublicKey(leaf);
    if (key !== expected && !key.equals(expected)) {
      throw new TpmTrustError("ERR_KEY_MISMATCH", `${leaf.label}: the certificate is for another key than the TPM's`, { certificate: leaf.label });
    }
  }
  if (leaf.basicConstraints?.ca) throw chainError("ERR_CHAIN_INVALID", leaf, "a CA certificate cannot be an EK or AK certificate");
  if (opts.requiredEku) {
    if (!leaf.extendedKeyUsage) tolerances.push({ code: "eku-absent", certificate: leaf.label });
    else if (!leaf.extendedKeyUsage.includes(opts.requiredEku)) {
      throw new TpmTrustError("ERR_CERT_EKU", `${leaf.label}: extendedKeyUsage lacks ${opts.requiredEku}`, {
        certificate: leaf.label,
        required: opts.requiredEku,
        present: leaf.extendedKeyUsage,
      });
    }
  }
  checkValidity(leaf, opts.at);
  criticalExtensions(leaf, tolerances);
}

/**
 * RFC 5280 §6.1.3/§6.1.4 checks of a complete path (leaf first, anchor last) whose signatures the
 * search verified; `hashes[k]` is the digest of the signature on path[k].
 */
function checkPath(path: ParsedCertificate[], hashes: string[], opts: ChainOptions, tolerances: Tolerance[]): void {
  const allowSha1 = opts.allowSha1 ?? true;
  for (let k = 1; k < path.length; k++) {
    const ca = path[k];
    const child = path[k - 1];
    const isAnchor = k === path.length - 1;
    checkValidity(ca, opts.at);
    criticalExtensions(ca, tolerances);
    if (compareNames(child.issuer, ca.subject) === "normalized") {
      tolerances.push({ code: "name-match-normalized", certificate: child.label, detail: `issuer "${child.issuer.text}" vs "${ca.subject.text}"` });
    }
    if (hashes[k - 1] === "sha1") {
      if (!allowSha1) throw chainError("ERR_CHAIN_INVALID", child, "signed with SHA-1");
      tolerances.push({ code: "sha1-signature", certificate: child.label });
    }
    if (!ca.basicConstraints) {
      if (isAnchor && ca.version === 1) tolerances.push({ code: "v1-trust-anchor", certificate: ca.label });
      else throw chainError("ERR_CHAIN_INVALID", ca, "issues certificates but has no basicConstraints (not a CA)");
    } else if (!ca.basicConstraints.ca) {
      throw chainError("ERR_CHAIN_INVALID", ca, "issues certificates but basicConstraints says it is not a CA");
    }
    if (ca.keyUsage && !ca.keyUsage.includes("keyCertSign")) throw chainError("ERR_CHAIN_INVALID", ca, "keyUsage lacks keyCertSign");
    const pathLength = ca.basicConstraints?.pathLength;
    if (pathLength !== undefined) {
      // intermediate CAs between this CA and the leaf, self-issued ones not counted (§6.1.4 (l))
      const below = path.slice(1, k).filter((c) => compareNames(c.issuer, c.subject) === false).length;
      if (below > pathLength) throw chainError("ERR_CHAIN_INVALID", ca, `pathLenConstraint ${pathLength} exceeded by ${below} intermediate CAs`, { pathLength, intermediates: below });
    }
  }
}

interface Failure {
  rank: number;
  error: TpmTrustError;
}

/**
 * Builds a path from `leaf` through `intermediates` to one of `roots` and validates it at `at`.
 * Tries every candidate issuer (several CAs may share a name), so a stale or re-keyed intermediate
 * does not hide a good one. Errors: ERR_KEY_MISMATCH, ERR_CERT_EKU, ERR_CERT_EXPIRED,
 * ERR_CHAIN_INVALID (bad signature, not a CA, path length, unsupported critical extension),
 * ERR_CHAIN_UNTRUSTED (no path to a trust anchor; details name the missing issuer).
 */
export function validateChain(opts: ChainOptions): ChainResult {
  const leafTolerances: Tolerance[] = [];
  checkLeaf(opts, leafTolerances);

  const anchors = opts.roots;
  const pool: ParsedCertificate[] = [];
  for (const c of [...anchors, ...(opts.intermediates ?? [])]) if (!pool.some((p) => sameCert(p, c))) pool.push(c);
  const isAnchor = (c: ParsedCertificate) => anchors.some((a) => sameCert(a, c) || (a.subject.der.equals(c.subject.der) && a.spki.equals(c.spki)));

  let best: Failure | undefined;
  const fail = (rank: number, error: TpmTrustError) => {
    if (!best || rank > best.rank) best = { rank, error };
  };

  const search = (path: ParsedCertificate[], hashes: string[]): ChainResult | undefined => {
    const cur = path[path.length - 1];
    const candidates = pool
      .filter((c) => !path.some((p) => sameCert(p, c)) && compareNames(cur.issuer, c.subject) !== false)
      // a different key identifier means a different key: not this certificate's issuer
      .filter((c) => !(cur.authorityKeyIdentifier && c.subjectKeyIdentifier && cur.authorityKeyIdentifier !== c.subjectKeyIdentifier))
      .sort((a, b) => Number(isAnchor(b)) - Number(isAnchor(a)));
    if (candidates.length === 0) {
      const selfSigned = compareNames(cur.issuer, cur.subject) !== false;
      const message = selfSigned ? "self-signed and not a trusted root" : `issuer "${cur.issuer.text}" is neither a trusted root nor a known intermediate`;
      fail(path.length, chainError("ERR_CHAIN_UNTRUSTED", cur, message, {
        missingIssuer: cur.issuer.text,
        ...(cur.authorityKeyIdentifier ? { authorityKeyIdentifier: cur.authorityKeyIdentifier } : {}),
        ...(cur.caIssuers.length ? { caIssuers: cur.caIssuers } : {}),
      }));
      return undefined;
    }
    for (const cand of candidates) {
      let valid: boolean;
      let hash: string;
      try {
        ({ valid, hash } = verifyCertificateSignature(cur, certificatePublicKey(cand)));
      } catch (e) {
        fail(100, e as TpmTrustError);
        continue;
      }
      if (!valid) {
        fail(100, chainError("ERR_CHAIN_INVALID", cur, `signature does not verify with the key of "${cand.label}"`, { issuer: cand.label }));
        continue;
      }
      const next = [...path, cand];
      const nextHashes = [...hashes, hash];
      if (isAnchor(cand)) {
        const tolerances = [...leafTolerances];
        try {
          checkPath(next, nextHashes, opts, tolerances);
        } catch (e) {
          fail(200, e as TpmTrustError);
          continue;
        }
        const parseTolerances = next.flatMap((c) => c.tolerances);
        return { path: next, anchor: cand, tolerances: [...parseTolerances, ...tolerances] };
      }
      if (next.length < MAX_PATH) {
        const found = search(next, nextHashes);
        if (found) return found;
      } else {
        fail(next.length, chainError("ERR_CHAIN_UNTRUSTED", cand, `no trusted root within ${MAX_PATH} certificates`));
      }
    }
    return undefined;
  };

  const result = search([opts.leaf], []);
  if (result) return result;
  throw best!.error;
}
