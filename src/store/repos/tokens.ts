import { type Ctx, affected, insertOrConflict } from "../ctx.js";
import { preparedInsert } from "../prepared.js";
import type { TokensTable, TokenSigningKeysTable } from "../schema.js";

const insertToken = preparedInsert("tokens");

/** An issued attestation token (the JWT itself is not stored, only what revocation needs). */
export interface TokenRecord {
  jti: string;
  hostName: string;
  kid: string;
  attestationId: string | null;
  issuedAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

const toToken = (r: TokensTable): TokenRecord => ({
  jti: r.jti,
  hostName: r.host_name,
  kid: r.kid,
  attestationId: r.attestation_id,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});

export function tokensRepo(ctx: Ctx) {
  return {
    async record(t: { jti: string; hostName: string; kid: string; attestationId?: string | null; issuedAt: number; expiresAt: number }): Promise<TokenRecord> {
      const row: TokensTable = { jti: t.jti, host_name: t.hostName, kid: t.kid, attestation_id: t.attestationId ?? null, issued_at: t.issuedAt, expires_at: t.expiresAt, revoked_at: null };
      await insertOrConflict(insertToken(ctx, row), `token ${t.jti} already recorded`, `host ${t.hostName} not found`);
      return toToken(row);
    },
    async get(jti: string): Promise<TokenRecord | undefined> {
      const r = await ctx.db.selectFrom("tokens").selectAll().where("jti", "=", jti).executeTakeFirst();
      return r ? toToken(r) : undefined;
    },
    async revoke(jti: string, at: number): Promise<boolean> {
      return affected(await ctx.db.updateTable("tokens").set({ revoked_at: at }).where("jti", "=", jti).where("revoked_at", "is", null).executeTakeFirst()) > 0;
    },
    /** Revokes every unrevoked token of a host (e.g. it became unhealthy); returns how many. */
    async revokeForHost(hostName: string, at: number): Promise<number> {
      return affected(await ctx.db.updateTable("tokens").set({ revoked_at: at }).where("host_name", "=", hostName).where("revoked_at", "is", null).executeTakeFirst());
    },
    /** Deletes records of tokens that expired before `before`; returns how many. */
    async purgeExpired(before: number): Promise<number> {
      return affected(await ctx.db.deleteFrom("tokens").where("expires_at", "<=", before).executeTakeFirst());
    },
  };
}

export interface SigningKey {
  kid: string;
  /** JWS alg, e.g. "ES256" */
  alg: string;
  privateJwk: Record<string, unknown>;
  publicJwk: Record<string, unknown>;
  createdAt: number;
  retiredAt: number | null;
}

const toKey = (r: TokenSigningKeysTable): SigningKey => ({
  kid: r.kid,
  alg: r.alg,
  privateJwk: JSON.parse(r.private_jwk) as Record<string, unknown>,
  publicJwk: JSON.parse(r.public_jwk) as Record<string, unknown>,
  createdAt: r.created_at,
  retiredAt: r.retired_at,
});

/** Token signing keys (JWKs). Rotation: add a new key, retire the old one; JWKS keeps serving retired keys while their tokens live. */
export function signingKeysRepo(ctx: Ctx) {
  return {
    async add(k: { kid: string; alg: string; privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown>; at: number }): Promise<SigningKey> {
      const row: TokenSigningKeysTable = { kid: k.kid, alg: k.alg, private_jwk: JSON.stringify(k.privateJwk), public_jwk: JSON.stringify(k.publicJwk), created_at: k.at, retired_at: null };
      await insertOrConflict(ctx.db.insertInto("token_signing_keys").values(row).execute(), `signing key ${k.kid} exists`);
      return toKey(row);
    },
    async get(kid: string): Promise<SigningKey | undefined> {
      const r = await ctx.db.selectFrom("token_signing_keys").selectAll().where("kid", "=", kid).executeTakeFirst();
      return r ? toKey(r) : undefined;
    },
    /** The newest unretired key: the one to sign with. */
    async current(): Promise<SigningKey | undefined> {
      const r = await ctx.db.selectFrom("token_signing_keys").selectAll().where("retired_at", "is", null).orderBy("created_at", "desc").orderBy("kid", "desc").limit(1).executeTakeFirst();
      return r ? toKey(r) : undefined;
    },
    /** Newest first: every key, or with `retiredSince` the unretired ones plus those retired after it (the JWKS). */
    async list(o: { retiredSince?: number } = {}): Promise<SigningKey[]> {
      let q = ctx.db.selectFrom("token_signing_keys").selectAll();
      if (o.retiredSince !== undefined) q = q.where((eb) => eb.or([eb("retired_at", "is", null), eb("retired_at", ">", o.retiredSince!)]));
      return (await q.orderBy("created_at", "desc").orderBy("kid", "desc").execute()).map(toKey);
    },
    async retire(kid: string, at: number): Promise<boolean> {
      return affected(await ctx.db.updateTable("token_signing_keys").set({ retired_at: at }).where("kid", "=", kid).where("retired_at", "is", null).executeTakeFirst()) > 0;
    },
  };
}
