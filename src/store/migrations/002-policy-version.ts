import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/** Policies carry the HGS policy version (v1/v2) of the hosts they may judge; existing ones are v2. */
export const policyVersion: Migration = {
  version: 2,
  name: "policy version of policies",
  async up(ctx: Ctx) {
    await ctx.db.schema.alterTable("policies").addColumn("policy_version", "text", (c) => c.notNull().defaultTo("v2")).execute();
  },
};
