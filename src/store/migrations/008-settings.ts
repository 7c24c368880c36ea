import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * Service settings an administrator changes at run time (`tpmtrust config set`: admission by EK
 * certificate chain, the allowed principals of each sensitive area), and the principal name an admin
 * token carries (`admin token create --name alice`), which every audit entry of its calls names.
 */
export const settings: Migration = {
  version: 8,
  name: "settings, named admin tokens",
  async up(ctx: Ctx) {
    await ctx.db.schema
      .createTable("settings")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("value", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await ctx.db.schema.alterTable("admin_tokens").addColumn("name", "text").execute();
    await ctx.db.schema.createIndex("admin_tokens_name").on("admin_tokens").column("name").execute();
  },
};
