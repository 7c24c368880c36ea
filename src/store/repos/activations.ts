import { randomUUID } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { type Ctx, affected, hex, insertOrConflict, notFound, unhex } from "../ctx.js";
import type { ActivationsTable } from "../schema.js";

/** A credential challenge (MakeCredential over the AK's name) waiting for the agent's answer. */
export interface Activation {
  id: string;
  hostName: string;
  akName: Buffer;
  akPublic: Buffer;
  ekName: Buffer;
  /** SHA-256 of the credential secret; compare the agent's answer against it in constant time */
  secretHash: Buffer;
  createdAt: number;
  expiresAt: number;
  completedAt: number | null;
  failures: number;
}

const toActivation = (r: ActivationsTable): Activation => ({
  id: r.id,
  hostName: r.host_name,
  akName: unhex(r.ak_name),
  akPublic: unhex(r.ak_public),
  ekName: unhex(r.ek_name),
  secretHash: unhex(r.secret_hash),
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  completedAt: r.completed_at,
  failures: r.failures,
});

export function activationsRepo(ctx: Ctx) {
  return {
    async create(o: { hostName: string; akName: Uint8Array; akPublic: Uint8Array; ekName: Uint8Array; secretHash: Uint8Array; ttlMs: number; at: number }): Promise<Activation> {
      const at = o.at;
      const row: ActivationsTable = {
        id: randomUUID(),
        host_name: o.hostName,
        ak_name: hex(o.akName),
        ak_public: hex(o.akPublic),
        ek_name: hex(o.ekName),
        secret_hash: hex(o.secretHash),
        created_at: at,
        expires_at: at + o.ttlMs,
        completed_at: null,
        failures: 0,
      };
      await insertOrConflict(ctx.db.insertInto("activations").values(row).execute(), "activation id collision", `host ${o.hostName} not found`);
      return toActivation(row);
    },

    /** A pending (not completed, not expired) activation; ERR_NOT_FOUND otherwise. */
    async getPending(id: string, at: number): Promise<Activation> {
      const r = await ctx.db.selectFrom("activations").selectAll().where("id", "=", id).executeTakeFirst();
      if (!r || r.completed_at !== null || r.expires_at <= at) throw new TpmTrustError("ERR_NOT_FOUND", "no pending activation with this id (unknown, completed or expired)");
      return toActivation(r);
    },

    /** Marks it completed, atomically and once: false if another caller completed it first or it expired. */
    async complete(id: string, at: number): Promise<boolean> {
      const r = await ctx.db
        .updateTable("activations")
        .set({ completed_at: at })
        .where("id", "=", id)
        .where("completed_at", "is", null)
        .where("expires_at", ">", at)
        .returning("id")
        .executeTakeFirst();
      return r !== undefined;
    },

    /** Deletes activations that expired before `before` (answered or not, they serve nothing any more); returns how many. */
    async purgeExpired(before: number): Promise<number> {
      return affected(await ctx.db.deleteFrom("activations").where("expires_at", "<=", before).executeTakeFirst());
    },

    /** Counts a wrong answer; returns the number of failures so far. */
    async recordFailure(id: string): Promise<number> {
      const r = await ctx.db
        .updateTable("activations")
        .set((eb) => ({ failures: eb("failures", "+", 1) }))
        .where("id", "=", id)
        .returning("failures")
        .executeTakeFirst();
      if (!r) throw notFound(`activation ${id}`);
      return r.failures;
    },
  };
}
