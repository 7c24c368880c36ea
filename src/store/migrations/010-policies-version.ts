import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * One counter every policy change bumps (a new version, enabling or disabling), so each instance
 * keeps the policies of a hardware class in memory and reads only this row (with the attestation's
 * AK lookup) to know they still hold.
 */
export const policiesVersion: Migration = {
  version: 10,
  name: "policies version row",
  async up(ctx: Ctx) {
    await ctx.db.schema
      .createTable("policies_version")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("version", "bigint", (c) => c.notNull())
      .execute();
    await ctx.db.insertInto("policies_version").values({ id: 1, version: 0 }).execute();
  },
};
