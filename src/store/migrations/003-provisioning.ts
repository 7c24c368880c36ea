import type { Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * DPS-style provisioning: the service's ID scope, several CA certificates per enrollment group,
 * and per registration the pending (challenged, not yet proven) device key, the device twin and the
 * last failure.
 */
export const provisioning: Migration = {
  version: 3,
  name: "provisioning scope, group CAs, pending device keys",
  async up(ctx: Ctx) {
    const s = ctx.db.schema;
    await s
      .createTable("provisioning_settings")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("id_scope", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    // JSON arrays of hex DER: anchors beyond ca_cert, and intermediates that complete paths to them
    await s.alterTable("enrollment_groups").addColumn("extra_ca_certs", "text", (c) => c.notNull().defaultTo("[]")).execute();
    await s.alterTable("enrollment_groups").addColumn("intermediate_certs", "text", (c) => c.notNull().defaultTo("[]")).execute();
    await s.alterTable("device_registrations").addColumn("pending_sas_key", "text").execute();
    await s.alterTable("device_registrations").addColumn("twin", "text").execute();
    await s.alterTable("device_registrations").addColumn("error_code", "integer").execute();
    await s.alterTable("device_registrations").addColumn("error_message", "text").execute();
  },
};
