import type { Ctx } from "../ctx.js";
import { GENESIS_HASH } from "../audit-chain.js";
import type { Migration } from "./index.js";

/** Every table DESIGN.md "Data" lists. Column conventions: see ../schema.ts. */
export const initial: Migration = {
  version: 1,
  name: "initial schema",
  async up(ctx: Ctx) {
    const s = ctx.db.schema;
    const table = (name: string) => s.createTable(name);
    const run = (b: { execute(): Promise<void> }) => b.execute();

    // trust
    await run(
      table("ek_allowlist")
        .addColumn("ek_hash", "text", (c) => c.primaryKey())
        .addColumn("label", "text")
        .addColumn("source", "text")
        .addColumn("added_at", "bigint", (c) => c.notNull()),
    );
    for (const name of ["ek_roots", "ek_intermediates"]) {
      await run(
        table(name)
          .addColumn("fingerprint", "text", (c) => c.primaryKey())
          .addColumn("subject", "text", (c) => c.notNull())
          .addColumn("cert", "text", (c) => c.notNull())
          .addColumn("added_at", "bigint", (c) => c.notNull()),
      );
    }
    await run(table("allowlist_dirs").addColumn("path", "text", (c) => c.primaryKey()).addColumn("added_at", "bigint", (c) => c.notNull()));

    // hosts
    await run(
      table("hosts")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("hardware_class", "text", (c) => c.notNull())
        .addColumn("policy_version", "text", (c) => c.notNull())
        .addColumn("trust_method", "text")
        .addColumn("health", "text", (c) => c.notNull())
        .addColumn("health_reason", "text")
        .addColumn("health_changed_at", "bigint")
        .addColumn("last_attestation_at", "bigint")
        .addColumn("deadline_at", "bigint")
        .addColumn("tags", "text", (c) => c.notNull())
        .addColumn("platform", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull()),
    );
    await s.createIndex("hosts_deadline").on("hosts").column("deadline_at").execute();
    await run(
      table("host_eks")
        .addColumn("ek_name", "text", (c) => c.primaryKey())
        .addColumn("host_name", "text", (c) => c.notNull().references("hosts.name").onDelete("cascade"))
        .addColumn("public", "text", (c) => c.notNull())
        .addColumn("cert", "text"),
    );
    await s.createIndex("host_eks_host").on("host_eks").column("host_name").execute();
    await run(
      table("aks")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("host_name", "text", (c) => c.notNull().references("hosts.name").onDelete("cascade"))
        .addColumn("public", "text", (c) => c.notNull())
        .addColumn("bound_at", "bigint", (c) => c.notNull())
        .addColumn("ak_cert", "text"),
    );
    await s.createIndex("aks_host").on("aks").column("host_name").execute();
    await run(
      table("activations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("host_name", "text", (c) => c.notNull().references("hosts.name").onDelete("cascade"))
        .addColumn("ak_name", "text", (c) => c.notNull())
        .addColumn("ak_public", "text", (c) => c.notNull())
        .addColumn("ek_name", "text", (c) => c.notNull())
        .addColumn("secret_hash", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("completed_at", "bigint")
        .addColumn("failures", "integer", (c) => c.notNull().defaultTo(0)),
    );
    await run(
      table("nonces")
        .addColumn("value", "text", (c) => c.primaryKey())
        .addColumn("purpose", "text", (c) => c.notNull())
        .addColumn("subject", "text")
        .addColumn("issued_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("consumed_at", "bigint"),
    );
    await s.createIndex("nonces_expires").on("nonces").column("expires_at").execute();

    // policies and verdicts
    await run(
      table("policies")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("hardware_class", "text")
        .addColumn("document", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text")
        .addColumn("disabled_at", "bigint")
        .addUniqueConstraint("policies_kind_name_version", ["kind", "name", "version"]),
    );
    await run(
      table("attestations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("host_name", "text", (c) => c.notNull().references("hosts.name").onDelete("cascade"))
        .addColumn("at", "bigint", (c) => c.notNull())
        .addColumn("verdict", "text", (c) => c.notNull())
        .addColumn("reason_code", "text")
        .addColumn("ak_name", "text")
        .addColumn("pcr_digest", "text")
        .addColumn("diff", "text")
        .addColumn("details", "text"),
    );
    await s.createIndex("attestations_host_at").on("attestations").columns(["host_name", "at"]).execute();
    await run(
      table("tokens")
        .addColumn("jti", "text", (c) => c.primaryKey())
        .addColumn("host_name", "text", (c) => c.notNull().references("hosts.name").onDelete("cascade"))
        .addColumn("kid", "text", (c) => c.notNull())
        .addColumn("attestation_id", "text")
        .addColumn("issued_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint"),
    );
    await s.createIndex("tokens_host").on("tokens").column("host_name").execute();
    await run(
      table("token_signing_keys")
        .addColumn("kid", "text", (c) => c.primaryKey())
        .addColumn("alg", "text", (c) => c.notNull())
        .addColumn("private_jwk", "text", (c) => c.notNull())
        .addColumn("public_jwk", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("retired_at", "bigint"),
    );
    await run(
      table("webhooks")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("url", "text", (c) => c.notNull())
        .addColumn("secret", "text", (c) => c.notNull())
        .addColumn("events", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("disabled_at", "bigint"),
    );
    await run(
      table("webhook_deliveries")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("webhook_id", "text", (c) => c.notNull().references("webhooks.id").onDelete("cascade"))
        .addColumn("event", "text", (c) => c.notNull())
        .addColumn("payload", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("next_attempt_at", "bigint")
        .addColumn("delivered_at", "bigint")
        .addColumn("last_status", "integer")
        .addColumn("last_error", "text"),
    );
    await s.createIndex("webhook_deliveries_due").on("webhook_deliveries").column("next_attempt_at").execute();

    // CA
    await run(
      table("ca_authorities")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("cert", "text", (c) => c.notNull())
        .addColumn("key_ref", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("retired_at", "bigint"),
    );
    await run(
      table("ca_templates")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("document", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull()),
    );
    await run(
      table("ca_certs")
        .addColumn("serial", "text", (c) => c.primaryKey())
        .addColumn("issuer_id", "text", (c) => c.notNull().references("ca_authorities.id"))
        .addColumn("template_name", "text")
        .addColumn("host_name", "text")
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("not_before", "bigint", (c) => c.notNull())
        .addColumn("not_after", "bigint", (c) => c.notNull())
        .addColumn("cert", "text", (c) => c.notNull())
        .addColumn("attestation", "text")
        .addColumn("issued_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint")
        .addColumn("revocation_reason", "integer"),
    );
    await s.createIndex("ca_certs_issuer").on("ca_certs").column("issuer_id").execute();
    await run(
      table("ca_crls")
        .addColumn("issuer_id", "text", (c) => c.notNull().references("ca_authorities.id"))
        .addColumn("number", "integer", (c) => c.notNull())
        .addColumn("this_update", "bigint", (c) => c.notNull())
        .addColumn("next_update", "bigint", (c) => c.notNull())
        .addColumn("crl", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("ca_crls_pk", ["issuer_id", "number"]),
    );

    // provisioning
    await run(
      table("enrollments")
        .addColumn("registration_id", "text", (c) => c.primaryKey())
        .addColumn("ek_public", "text", (c) => c.notNull())
        .addColumn("device_id", "text")
        .addColumn("initial_twin", "text")
        .addColumn("allocation", "text", (c) => c.notNull())
        .addColumn("reprovision_policy", "text", (c) => c.notNull())
        .addColumn("enabled", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull()),
    );
    await run(
      table("enrollment_groups")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("ca_cert", "text", (c) => c.notNull())
        .addColumn("initial_twin", "text")
        .addColumn("allocation", "text", (c) => c.notNull())
        .addColumn("reprovision_policy", "text", (c) => c.notNull())
        .addColumn("enabled", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull()),
    );
    await run(
      table("device_registrations")
        .addColumn("registration_id", "text", (c) => c.primaryKey())
        .addColumn("group_name", "text")
        .addColumn("ek_public", "text", (c) => c.notNull())
        .addColumn("srk_public", "text")
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("substatus", "text")
        .addColumn("assigned_hub", "text")
        .addColumn("device_id", "text")
        .addColumn("operation_id", "text")
        .addColumn("etag", "text", (c) => c.notNull())
        .addColumn("payload", "text")
        .addColumn("sas_key", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull()),
    );
    await run(
      table("hubs")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("hostname", "text", (c) => c.notNull())
        .addColumn("weight", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull()),
    );

    // key release
    await run(
      table("key_servers")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("config", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull()),
    );
    await run(
      table("key_providers")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("key_server", "text", (c) => c.notNull().references("key_servers.name"))
        .addColumn("primary_key_id", "text", (c) => c.notNull())
        .addColumn("current_version", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("disabled_at", "bigint"),
    );
    await run(
      table("key_versions")
        .addColumn("provider_name", "text", (c) => c.notNull().references("key_providers.name").onDelete("cascade"))
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("key_ref", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("retired_at", "bigint")
        .addPrimaryKeyConstraint("key_versions_pk", ["provider_name", "version"]),
    );
    await run(
      table("clusters")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("selector", "text", (c) => c.notNull())
        .addColumn("providers", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull()),
    );

    // audit and access
    await run(
      table("audit")
        .addColumn("seq", "bigint", (c) => c.primaryKey())
        .addColumn("at", "bigint", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("subject", "text")
        .addColumn("outcome", "text", (c) => c.notNull())
        .addColumn("details", "text", (c) => c.notNull())
        .addColumn("prev_hash", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull()),
    );
    await run(
      table("audit_head")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("seq", "bigint", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull()),
    );
    await ctx.db.insertInto("audit_head").values({ id: 1, seq: 0, hash: GENESIS_HASH }).execute();
    await run(
      table("admin_tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("token_hash", "text", (c) => c.notNull().unique())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("label", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint"),
    );
    await run(
      table("rate_limits")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("window_start", "bigint", (c) => c.notNull())
        .addColumn("count", "integer", (c) => c.notNull()),
    );
  },
};
