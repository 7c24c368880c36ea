/**
 * Attestation tokens: ES256 JWTs with EAR-style claims, signed with keys kept in the store.
 * A key signs for `keyRotationMs`, then a new one takes over; a retired key stays in the JWKS until
 * every token it signed has expired. Each token is recorded (jti, host, exp) so that it can be
 * revoked when its host turns unhealthy; relying parties inside tpmtrust check that record too.
 */
import { createPrivateKey, randomUUID, sign, type JsonWebKey, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint, errors as joseErrors, importJWK, jwtVerify, type JWK, type JWTPayload } from "jose";
import { newKeyPair } from "../crypto/keygen.js";
import { TpmTrustError } from "../errors.js";
import type { Store, TokenRecord } from "../store/index.js";

export const TOKEN_ALG = "ES256";
export const DEFAULT_TOKEN_ISSUER = "tpmtrust";
const EAT_PROFILE = "tag:tpmtrust.dev,2026:attestation-token/v1";

export interface PolicyRef {
  id: string;
  kind: string;
  name: string;
  version: number;
}

/** The claims of an attestation token (docs/api.md). */
export interface AttestationClaims extends JWTPayload {
  iss: string;
  sub: string;
  iat: number;
  exp: number;
  jti: string;
  hwclass: string;
  policy_version: string;
  policies: PolicyRef[];
  verdict: "pass";
  pcr_digest: string;
  "ear.status": "affirming";
  eat_profile: string;
}

/** What signing and publishing tokens needs of the attestation settings (attest/config.ts). */
export interface TokenConfig {
  tokenTtlMs: number;
  keyRotationMs: number;
  issuer: string;
}

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

interface ActiveKey {
  kid: string;
  key: KeyObject;
  /** the token header, base64url: the same for every token this key signs */
  header: string;
  createdAt: number;
  /** when this process last asked the store for the current key */
  checkedAt: number;
}

// The key a store signs with, re-read at most every few seconds so that a key rotated by another
// instance is picked up; kids are JWK thumbprints, so public keys never change under a kid.
const active = new WeakMap<Store, ActiveKey>();
const publicKeys = new Map<string, KeyLike>();
const RECHECK_MS = 5_000;

const b64url = (s: string): string => Buffer.from(s).toString("base64url");

function activeKey(kid: string, key: KeyObject, createdAt: number, checkedAt: number): ActiveKey {
  return { kid, key, header: b64url(JSON.stringify({ alg: TOKEN_ALG, kid, typ: "JWT" })), createdAt, checkedAt };
}

async function newSigningKey(store: Store, now: number): Promise<ActiveKey> {
  const { privateKey, publicKey } = newKeyPair("ecdsa-p256");
  const publicJwk = publicKey.export({ format: "jwk" }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk);
  const pub = { ...publicJwk, kid, alg: TOKEN_ALG, use: "sig" };
  await store.transaction(async (tx) => {
    const older = await tx.signingKeys.list({ retiredSince: now });
    await tx.signingKeys.add({ kid, alg: TOKEN_ALG, privateJwk: { ...privateKey.export({ format: "jwk" }), kid, alg: TOKEN_ALG }, publicJwk: pub, at: now });
    for (const k of older) await tx.signingKeys.retire(k.kid, now);
    await tx.audit.append({ actor: "system", action: "token.key.rotate", subject: kid, outcome: "success", details: { retired: older.map((k) => k.kid) }, at: now });
  });
  return activeKey(kid, privateKey, now, now);
}

/** The key to sign with now: the store's current key, or a new one when it is due for rotation. */
export async function signingKey(store: Store, cfg: TokenConfig, now: number): Promise<ActiveKey> {
  const cached = active.get(store);
  if (cached && now - cached.checkedAt < RECHECK_MS && now - cached.createdAt < cfg.keyRotationMs) return cached;
  const cur = await store.signingKeys.current();
  let next: ActiveKey;
  if (!cur || now - cur.createdAt >= cfg.keyRotationMs) next = await newSigningKey(store, now);
  else if (cached?.kid === cur.kid) next = { ...cached, checkedAt: now };
  else next = activeKey(cur.kid, createPrivateKey({ key: cur.privateJwk as JsonWebKey, format: "jwk" }), cur.createdAt, now);
  active.set(store, next);
  return next;
}

export interface SignedToken {
  jwt: string;
  jti: string;
  kid: string;
  issuedAt: number;
  expiresAt: number;
}

/**
 * Signs a token for a host that passed; the caller records it (see recordVerdict). JWS compact
 * serialisation (RFC 7515 §7.1) with ES256 (RFC 7518 §3.4: R ‖ S, 32 bytes each), signed with
 * node:crypto directly: one token per attestation, and a library's generic path cost a tenth of it.
 */
export async function signToken(
  store: Store,
  cfg: TokenConfig,
  now: number,
  c: { host: string; hardwareClass: string; policyVersion: string; policies: PolicyRef[]; pcrDigestHex: string },
): Promise<SignedToken> {
  const key = await signingKey(store, cfg, now);
  const jti = randomUUID();
  const iat = Math.floor(now / 1000);
  const exp = Math.floor((now + cfg.tokenTtlMs) / 1000);
  const claims: AttestationClaims = {
    iss: cfg.issuer,
    sub: c.host,
    iat,
    exp,
    jti,
    hwclass: c.hardwareClass,
    policy_version: c.policyVersion,
    policies: c.policies,
    verdict: "pass",
    pcr_digest: c.pcrDigestHex,
    "ear.status": "affirming",
    eat_profile: EAT_PROFILE,
  };
  const input = `${key.header}.${b64url(JSON.stringify(claims))}`;
  const signature = sign("sha256", Buffer.from(input), { key: key.key, dsaEncoding: "ieee-p1363" });
  return { jwt: `${input}.${signature.toString("base64url")}`, jti, kid: key.kid, issuedAt: iat * 1000, expiresAt: exp * 1000 };
}

/** The JWKS: unretired keys and those retired recently enough that tokens they signed may still live. */
export async function jwks(store: Store, cfg: TokenConfig, now: number): Promise<{ keys: Record<string, unknown>[] }> {
  const keys = await store.signingKeys.list({ retiredSince: now - cfg.tokenTtlMs });
  return { keys: keys.map((k) => k.publicJwk) };
}

async function publicKeyFor(store: Store, kid: unknown): Promise<KeyLike> {
  if (typeof kid !== "string") throw new TpmTrustError("ERR_TOKEN_INVALID", "the token has no kid");
  const known = publicKeys.get(kid);
  if (known) return known;
  const k = await store.signingKeys.get(kid);
  if (!k || k.alg !== TOKEN_ALG) throw new TpmTrustError("ERR_TOKEN_INVALID", "the token was not signed by a key of this service");
  const key = await importJWK(k.publicJwk as JWK, TOKEN_ALG);
  publicKeys.set(kid, key);
  return key;
}

/**
 * Verifies an attestation token for a relying party inside tpmtrust: signature by one of the
 * service's keys, issuer, expiry at `now`, and the token record (issued here, not revoked).
 * Throws ERR_TOKEN_INVALID, ERR_TOKEN_EXPIRED or ERR_TOKEN_REVOKED.
 */
export async function verifyAttestationToken(
  store: Store,
  jwt: string,
  now: number,
  o: { issuer?: string } = {},
): Promise<{ claims: AttestationClaims; record: TokenRecord }> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(jwt, (header) => publicKeyFor(store, header.kid), {
      algorithms: [TOKEN_ALG],
      currentDate: new Date(now),
      issuer: o.issuer ?? DEFAULT_TOKEN_ISSUER,
      requiredClaims: ["sub", "jti", "exp", "iat"],
    }));
  } catch (e) {
    if (e instanceof TpmTrustError) throw e;
    if (e instanceof joseErrors.JWTExpired) throw new TpmTrustError("ERR_TOKEN_EXPIRED", "the attestation token has expired");
    throw new TpmTrustError("ERR_TOKEN_INVALID", `the attestation token does not verify: ${(e as Error).message}`);
  }
  const record = await store.tokens.get(payload.jti!);
  if (!record || record.hostName !== payload.sub) throw new TpmTrustError("ERR_TOKEN_INVALID", "the attestation token was not issued by this service");
  if (record.revokedAt !== null) {
    throw new TpmTrustError("ERR_TOKEN_REVOKED", `the attestation token was revoked at ${new Date(record.revokedAt).toISOString()}`, { revokedAt: record.revokedAt });
  }
  return { claims: payload as AttestationClaims, record };
}
