import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * Key attestation requests waiting for the client's answer to the CA's EK challenge (MS-WCCE
 * 3.2.2.6.2.1.2.6: the CA keeps the request pending with its challenge; 3.2.2.6.2.1.2.7: one answer).
 */
export const caPending: Migration = {
  version: 9,
  name: "pending key attestation requests (CMC EK challenge)",
  async up(ctx: Ctx) {
    await ctx.db.schema
      .createTable("ca_pending")
      .addColumn("request_id", "bigint", (c) => c.primaryKey())
      .addColumn("template", "text", (c) => c.notNull())
      .addColumn("csr", "text", (c) => c.notNull())
      .addColumn("ek_public", "text", (c) => c.notNull())
      .addColumn("ek_certs", "text", (c) => c.notNull())
      .addColumn("ek_hash", "text", (c) => c.notNull())
      .addColumn("aik_name", "text", (c) => c.notNull())
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("requester", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("answered_at", "bigint")
      .execute();
  },
};
