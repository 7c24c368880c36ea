import { randomInt } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { type Ctx, fromJson, hex, toJson, unhex } from "../ctx.js";
import type { CaPendingTable } from "../schema.js";

/** A key attestation request waiting for the answer to its EK challenge. */
export interface CaPending {
  requestId: number;
  template: string;
  csr: Buffer;
  ekPublic: Buffer;
  ekCerts: Buffer[];
  ekHash: string;
  aikName: Buffer;
  secretHash: Buffer;
  requester: { actor: string; tokenId: string | null };
  createdAt: number;
  expiresAt: number;
  answeredAt: number | null;
}

const toPending = (r: CaPendingTable): CaPending => ({
  requestId: Number(r.request_id),
  template: r.template,
  csr: unhex(r.csr),
  ekPublic: unhex(r.ek_public),
  ekCerts: fromJson<string[]>(r.ek_certs).map(unhex),
  ekHash: r.ek_hash,
  aikName: unhex(r.aik_name),
  secretHash: unhex(r.secret_hash),
  requester: fromJson(r.requester),
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
  answeredAt: r.answered_at === null ? null : Number(r.answered_at),
});

export function caPendingRepo(ctx: Ctx) {
  return {
    /** Stores a pending request under a fresh random request id (1 … 2^31-1). */
    async create(o: Omit<CaPending, "requestId" | "createdAt" | "expiresAt" | "answeredAt"> & { ttlMs: number; at: number }): Promise<CaPending> {
      for (let attempt = 0; ; attempt++) {
        const row: CaPendingTable = {
          request_id: randomInt(1, 2 ** 31),
          template: o.template,
          csr: hex(o.csr),
          ek_public: hex(o.ekPublic),
          ek_certs: toJson(o.ekCerts.map(hex)),
          ek_hash: o.ekHash,
          aik_name: hex(o.aikName),
          secret_hash: hex(o.secretHash),
          requester: toJson(o.requester),
          created_at: o.at,
          expires_at: o.at + o.ttlMs,
          answered_at: null,
        };
        const taken = await ctx.db.selectFrom("ca_pending").select("request_id").where("request_id", "=", row.request_id).executeTakeFirst();
        if (taken && attempt < 5) continue;
        await ctx.db.insertInto("ca_pending").values(row).execute();
        return toPending(row);
      }
    },

    /**
     * Claims the request for its one answer (MS-WCCE 3.2.2.6.2.1.2.7 step 5: the challenge is spent
     * whatever the answer's outcome), atomically: of concurrent answers exactly one gets it.
     * ERR_NONCE_UNKNOWN (no such request), ERR_NONCE_REUSED (already answered), ERR_NONCE_EXPIRED.
     */
    async claim(requestId: number, at: number): Promise<CaPending> {
      const r = await ctx.db
        .updateTable("ca_pending")
        .set({ answered_at: at })
        .where("request_id", "=", requestId)
        .where("answered_at", "is", null)
        .where("expires_at", ">", at)
        .returningAll()
        .executeTakeFirst();
      if (r) return toPending(r);
      const seen = await ctx.db.selectFrom("ca_pending").selectAll().where("request_id", "=", requestId).executeTakeFirst();
      if (!seen) throw new TpmTrustError("ERR_NONCE_UNKNOWN", `no pending key attestation request ${requestId}`, { requestId });
      if (seen.answered_at !== null) throw new TpmTrustError("ERR_NONCE_REUSED", `request ${requestId}'s challenge was already answered`, { requestId });
      throw new TpmTrustError("ERR_NONCE_EXPIRED", `request ${requestId}'s challenge has expired`, { requestId });
    },

    async get(requestId: number): Promise<CaPending | undefined> {
      const r = await ctx.db.selectFrom("ca_pending").selectAll().where("request_id", "=", requestId).executeTakeFirst();
      return r ? toPending(r) : undefined;
    },

    /** Newest first; with `all` also the answered and expired ones (still kept). */
    async list(o: { all?: boolean; at: number; limit: number }): Promise<CaPending[]> {
      let q = ctx.db.selectFrom("ca_pending").selectAll();
      if (!o.all) q = q.where("answered_at", "is", null).where("expires_at", ">", o.at);
      return (await q.orderBy("created_at", "desc").orderBy("request_id").limit(o.limit).execute()).map(toPending);
    },

    /** Removes a request (an operator denied it): a later answer finds no request. False if unknown. */
    async remove(requestId: number): Promise<boolean> {
      const r = await ctx.db.deleteFrom("ca_pending").where("request_id", "=", requestId).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    },

    /** Moves a pending request's expiry (tests and operators: expire one now). */
    async setExpiry(requestId: number, expiresAt: number): Promise<boolean> {
      const r = await ctx.db.updateTable("ca_pending").set({ expires_at: expiresAt }).where("request_id", "=", requestId).executeTakeFirst();
      return Number(r.numUpdatedRows) > 0;
    },
  };
}
