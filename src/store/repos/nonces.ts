import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { type Ctx, affected, hex, unhex } from "../ctx.js";
import { prepared } from "../prepared.js";
import type { NoncesTable } from "../schema.js";

export interface Nonce {
  value: Buffer;
  purpose: string;
  /** who may consume it (e.g. a host name); null = no subject */
  subject: string | null;
  issuedAt: number;
  expiresAt: number;
  consumedAt: number | null;
}

const toNonce = (r: NoncesTable): Nonce => ({
  value: unhex(r.value),
  purpose: r.purpose,
  subject: r.subject,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
  consumedAt: r.consumed_at,
});

// Nonces are consumed by every attestation: one prepared statement per shape of `subject`.
const consumeQuery = ({ db }: Ctx, value: string, purpose: string, subject: string | null, at: number) =>
  db
    .updateTable("nonces")
    .set({ consumed_at: at })
    .where("value", "=", value)
    .where("purpose", "=", purpose)
    .where((eb) => (subject === null ? eb("subject", "is", null) : eb("subject", "=", subject)))
    .where("consumed_at", "is", null)
    .where("expires_at", ">", at)
    .returningAll();
const consumeFor = prepared((ctx, value: string, purpose: string, subject: string, at: number) => consumeQuery(ctx, value, purpose, subject, at));
const consumeUnbound = prepared((ctx, value: string, purpose: string, at: number) => consumeQuery(ctx, value, purpose, null, at));

/** Single-use, expiring challenges shared by every service instance on the database. */
export function noncesRepo(ctx: Ctx) {
  return {
    /** Issues a fresh random nonce (default 32 bytes). */
    async issue(o: { purpose: string; subject?: string | null; ttlMs: number; at: number; bytes?: number }): Promise<Nonce> {
      const at = o.at;
      const row: NoncesTable = {
        value: hex(randomBytes(o.bytes ?? 32)),
        purpose: o.purpose,
        subject: o.subject ?? null,
        issued_at: at,
        expires_at: at + o.ttlMs,
        consumed_at: null,
      };
      await ctx.db.insertInto("nonces").values(row).execute();
      return toNonce(row);
    },

    /**
     * Consumes a nonce atomically: one UPDATE … WHERE consumed_at IS NULL AND expires_at > now
     * RETURNING, so of any number of concurrent callers on any instance exactly one succeeds.
     * `purpose` and `subject` must equal what it was issued for (null subject matches only null).
     * Throws ERR_NONCE_UNKNOWN, ERR_NONCE_REUSED or ERR_NONCE_EXPIRED.
     */
    async consume(o: { value: Uint8Array; purpose: string; subject?: string | null; at: number }): Promise<Nonce> {
      const at = o.at;
      const value = hex(o.value);
      const subject = o.subject ?? null;
      const [row] = (subject === null ? await consumeUnbound(ctx, value, o.purpose, at) : await consumeFor(ctx, value, o.purpose, subject, at)).rows;
      if (row) return toNonce(row);
      const seen = await ctx.db.selectFrom("nonces").selectAll().where("value", "=", value).executeTakeFirst();
      if (!seen || seen.purpose !== o.purpose || seen.subject !== subject) throw new TpmTrustError("ERR_NONCE_UNKNOWN");
      if (seen.consumed_at !== null) throw new TpmTrustError("ERR_NONCE_REUSED");
      throw new TpmTrustError("ERR_NONCE_EXPIRED");
    },

    /** Deletes nonces that expired before `before`; returns how many. */
    async purgeExpired(before: number): Promise<number> {
      return affected(await ctx.db.deleteFrom("nonces").where("expires_at", "<=", before).executeTakeFirst());
    },
  };
}
