import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * Each host's last verified evidence (the PCR values its quote proved and its event log), so that a
 * policy can be judged against the fleet before it is added.
 */
export const hostEvidence: Migration = {
  version: 7,
  name: "last verified evidence per host",
  async up(ctx: Ctx) {
    await ctx.db.schema
      .createTable("host_evidence")
      .addColumn("host_name", "text", (c) => c.primaryKey().references("hosts.name").onDelete("cascade"))
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("pcrs", "text", (c) => c.notNull())
      .addColumn("event_log", "text")
      .addColumn("event_log_sha256", "text")
      .execute();
  },
};
