import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/** ACME (RFC 8555) accounts, orders and authorizations of the key attestation CA. */
export const acme: Migration = {
  version: 4,
  name: "acme accounts, orders, authorizations",
  async up(ctx: Ctx) {
    const s = ctx.db.schema;
    await s
      .createTable("acme_accounts")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("thumbprint", "text", (c) => c.notNull().unique())
      .addColumn("jwk", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("contact", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();
    await s
      .createTable("acme_orders")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("account_id", "text", (c) => c.notNull().references("acme_accounts.id").onDelete("cascade"))
      .addColumn("template", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("identifiers", "text", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("cert_serial", "text")
      .addColumn("error", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();
    await s
      .createTable("acme_authzs")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("order_id", "text", (c) => c.notNull().references("acme_orders.id").onDelete("cascade"))
      .addColumn("identifier", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("token", "text", (c) => c.notNull())
      .addColumn("challenge_status", "text", (c) => c.notNull())
      .addColumn("validated_at", "bigint")
      .addColumn("error", "text")
      .addColumn("attestation", "text")
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .execute();
    await s.createIndex("acme_authzs_order").on("acme_authzs").column("order_id").execute();
  },
};
