import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * One counter every change to EK trust bumps (allow-list, allow-list folders, roots, intermediates),
 * so each instance can tell cheaply whether a cached EK trust evaluation still holds; and hosts an
 * administrator disabled.
 */
export const trustVersion: Migration = {
  version: 5,
  name: "trust version, disabled hosts",
  async up(ctx: Ctx) {
    await ctx.db.schema
      .createTable("trust_version")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("version", "bigint", (c) => c.notNull())
      .execute();
    await ctx.db.insertInto("trust_version").values({ id: 1, version: 0 }).execute();
    await ctx.db.schema.alterTable("hosts").addColumn("disabled_at", "bigint").execute();
  },
};
