import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * Incremental IMA verification per host and boot in the database (issue 17): any service instance
 * continues from the last verified entry, and a restart keeps it. One row per host, replaced when a
 * new boot (resetCount) or policy set starts over; `version` changes on every write, so a write made
 * from a stale read is refused and an instance's cached copy is checked against it.
 */
export const imaState: Migration = {
  version: 13,
  name: "IMA verification state per host and boot",
  async up(ctx: Ctx) {
    await ctx.db.schema
      .createTable("ima_state")
      .addColumn("host_name", "text", (c) => c.primaryKey().references("hosts.name").onDelete("cascade"))
      .addColumn("reset_count", "bigint", (c) => c.notNull())
      .addColumn("policies", "text", (c) => c.notNull())
      .addColumn("next_index", "bigint", (c) => c.notNull())
      .addColumn("pcr10", "text", (c) => c.notNull())
      .addColumn("failures", "bigint", (c) => c.notNull())
      .addColumn("last_failure", "text")
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("version", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
  },
};
