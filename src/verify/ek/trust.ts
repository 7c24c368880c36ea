/**
 * EK trust, the way AD CS judges it for key attestation and the attestation service for hosts:
 * `ek-key` — the EK's hash is on an allow-list (AD CS "EKpub", policy OID 1.3.6.1.4.1.311.21.30);
 * `ek-cert` — an EK certificate for this EK chains to a trusted root (AD CS "EK certificate",
 * 1.3.6.1.4.1.311.21.31). A revoked EK (by hash) passes neither. Pure: the allow-list, revoked EKs,
 * anchors and time come in as arguments.
 */
import { createHash } from "node:crypto";
import { isTpmTrustError, TpmTrustError, type ErrorCode } from "../../errors.js";
import { toPublicKey, type PublicKeyInput } from "../../crypto/keys.js";
import { loadCertificate, type ParsedCertificate } from "./certificate.js";
import { EKU_EK_CERTIFICATE, validateChain } from "./chain.js";
import type { TcgFacts } from "./extensions.js";
import { ekHash, ekHashFromCertificate } from "./hash.js";
import type { Tolerance } from "./tolerances.js";

export type EkTrustMethod = "ek-key" | "ek-cert";

export interface EkTrustInput {
  /** the TPM's EK: TPMT_PUBLIC, KeyObject or SPKI (DER bytes or PEM) */
  ekPublic?: PublicKeyInput;
  /** EK certificates as read from NV or sent by the client (parsed, or DER/PEM bytes) */
  ekCerts?: readonly (ParsedCertificate | Uint8Array | string)[];
  /** intermediate CAs: the store's EKCA plus those the client supplied */
  intermediates?: readonly ParsedCertificate[];
  /** allow-listed EK hashes (64 hex digits, any case) */
  allowlist: ReadonlySet<string>;
  /** revoked EK hashes (lowercase): refused by both methods, whatever else trusts them */
  revoked?: ReadonlySet<string>;
  /** trusted roots (EKROOT) */
  roots: readonly ParsedCertificate[];
  /** when the certificates must be valid */
  at: Date;
}

export interface MethodOutcome {
  passed: boolean;
  /** why it failed (absent when passed) */
  code?: ErrorCode;
  reason: string;
}

export interface EkCertificateOutcome {
  /** the certificate's subject (or issuer and serial) */
  certificate: string;
  passed: boolean;
  /** EK hash of the certified key (absent when the certificate could not be parsed) */
  ekHash?: string;
  tcg?: TcgFacts;
  /** when passed: labels from leaf to anchor */
  path?: string[];
  /** when passed: SHA-256 of each certificate's DER from leaf to anchor (lowercase hex, the ids `trust cas` lists) */
  pathSha256?: string[];
  tolerances?: Tolerance[];
  code?: ErrorCode;
  reason: string;
  details?: Record<string, unknown>;
}

export interface EkTrustResult {
  /** true when at least one method passed */
  trusted: boolean;
  /** EK hash of ekPublic; without ekPublic, of the first certificate's key */
  ekHash?: string;
  methods: Record<EkTrustMethod, MethodOutcome>;
  /** one outcome per EK certificate, in input order */
  certificates: EkCertificateOutcome[];
  /** TPM facts from the first certificate that passed, else from the first parsed one */
  tcg?: TcgFacts;
}

function evaluateCertificate(input: ParsedCertificate | Uint8Array | string, opts: EkTrustInput): EkCertificateOutcome {
  let cert: ParsedCertificate;
  try {
    cert = input instanceof Uint8Array || typeof input === "string" ? loadCertificate(input) : input;
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { certificate: "(unparseable)", passed: false, code: e.code, reason: e.message, ...(e.details ? { details: e.details } : {}) };
  }
  const base = { certificate: cert.label, tcg: cert.tcg };
  let hash: string;
  try {
    hash = ekHashFromCertificate(cert);
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { ...base, passed: false, code: e.code, reason: e.message };
  }
  if (opts.revoked?.has(hash)) return { ...base, ekHash: hash, passed: false, code: "ERR_EK_REVOKED", reason: `EK ${hash} is revoked` };
  try {
    const chain = validateChain({
      leaf: cert,
      intermediates: opts.intermediates,
      roots: opts.roots,
      at: opts.at,
      requiredEku: EKU_EK_CERTIFICATE,
      ...(opts.ekPublic !== undefined ? { expectedKey: opts.ekPublic } : {}),
    });
    return {
      ...base,
      ekHash: hash,
      passed: true,
      path: chain.path.map((c) => c.label),
      pathSha256: chain.path.map((c) => createHash("sha256").update(c.der).digest("hex")),
      tolerances: chain.tolerances,
      reason: `chains to "${chain.anchor.label}"`,
    };
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { ...base, ekHash: hash, passed: false, code: e.code, reason: e.message, ...(e.details ? { details: e.details } : {}) };
  }
}

// an allow-list is judged against many EKs in a row (the trust sweep): lowercased once per set
const lowered = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();
function lowercased(allowlist: ReadonlySet<string>): ReadonlySet<string> {
  let l = lowered.get(allowlist);
  if (!l) lowered.set(allowlist, (l = new Set([...allowlist].map((h) => h.toLowerCase()))));
  return l;
}

/**
 * Which EK trust methods pass. Evidence that fails is reported per method and per certificate,
 * never thrown; only an unusable `ekPublic` throws (ERR_PARSE_*).
 */
export function evaluateEkTrust(opts: EkTrustInput): EkTrustResult {
  const ekKey = opts.ekPublic !== undefined ? toPublicKey(opts.ekPublic) : undefined;
  const certificates = (opts.ekCerts ?? []).map((c) => evaluateCertificate(c, { ...opts, ...(ekKey ? { ekPublic: ekKey } : {}) }));
  const allow = lowercased(opts.allowlist);

  const hashes = ekKey ? [ekHash(ekKey)] : certificates.flatMap((c) => (c.ekHash ? [c.ekHash] : []));
  const listed = hashes.find((h) => allow.has(h));
  const revoked = hashes.find((h) => opts.revoked?.has(h));
  const ekKeyOutcome: MethodOutcome = revoked
    ? { passed: false, code: "ERR_EK_REVOKED", reason: `EK ${revoked} is revoked` }
    : listed
    ? { passed: true, reason: `EK hash ${listed} is allow-listed` }
    : hashes.length === 0
      ? { passed: false, code: "ERR_EK_NOT_ALLOWLISTED", reason: "no EK public key was given" }
      : { passed: false, code: "ERR_EK_NOT_ALLOWLISTED", reason: `EK hash ${hashes.join(", ")} is not allow-listed` };

  const good = certificates.find((c) => c.passed);
  let ekCertOutcome: MethodOutcome;
  if (good) ekCertOutcome = { passed: true, reason: `EK certificate "${good.certificate}" ${good.reason}` };
  else if (certificates.length === 0) ekCertOutcome = { passed: false, code: "ERR_EK_CERT_REQUIRED", reason: "no EK certificate was given" };
  else {
    // the most telling failure: a revoked EK, then a certificate for this EK over one for another key
    const first = certificates.find((c) => c.code === "ERR_EK_REVOKED") ?? certificates.find((c) => c.code !== "ERR_KEY_MISMATCH") ?? certificates[0];
    ekCertOutcome = { passed: false, code: first.code!, reason: first.reason };
  }

  const tcg = (good ?? certificates.find((c) => c.tcg))?.tcg;
  return {
    trusted: ekKeyOutcome.passed || ekCertOutcome.passed,
    ...(hashes[0] ? { ekHash: hashes[0] } : {}),
    methods: { "ek-key": ekKeyOutcome, "ek-cert": ekCertOutcome },
    certificates,
    ...(tcg ? { tcg } : {}),
  };
}

/**
 * Throws unless one of `methods` passed. One method asked: its own code (ERR_EK_NOT_ALLOWLISTED,
 * ERR_EK_CERT_REQUIRED, or ERR_EK_NOT_TRUSTED for a certificate that did not validate); several:
 * ERR_EK_NOT_TRUSTED; ERR_EK_REVOKED whenever an asked method failed because the EK is revoked.
 * `details.methods` holds every asked method's outcome.
 */
export function requireEkTrust(result: EkTrustResult, methods: readonly EkTrustMethod[]): void {
  if (methods.length === 0) throw new TpmTrustError("ERR_USAGE", "requireEkTrust needs at least one trust method");
  if (methods.some((m) => result.methods[m].passed)) return;
  const outcomes = Object.fromEntries(methods.map((m) => [m, result.methods[m]]));
  const reason = methods.map((m) => `${m}: ${result.methods[m].reason}`).join("; ");
  const only = methods.length === 1 ? result.methods[methods[0]].code : undefined;
  const code: ErrorCode = methods.some((m) => result.methods[m].code === "ERR_EK_REVOKED")
    ? "ERR_EK_REVOKED"
    : only === "ERR_EK_NOT_ALLOWLISTED" || only === "ERR_EK_CERT_REQUIRED"
      ? only
      : "ERR_EK_NOT_TRUSTED";
  throw new TpmTrustError(code, `the EK is not trusted (${reason})`, { methods: outcomes });
}
