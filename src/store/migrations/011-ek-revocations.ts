import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/** Revoked EKs (by EK hash): refused at every decision whatever else trusts them; a change bumps the trust version. */
export const ekRevocations: Migration = {
  version: 11,
  name: "revoked EKs",
  async up(ctx: Ctx) {
    await ctx.db.schema
      .createTable("ek_revocations")
      .addColumn("ek_hash", "text", (c) => c.primaryKey())
      .addColumn("reason", "text")
      .addColumn("revoked_at", "bigint", (c) => c.notNull())
      .execute();
  },
};
