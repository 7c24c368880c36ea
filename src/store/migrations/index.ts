import { TpmTrustError } from "../../errors.js";
import type { Ctx } from "../ctx.js";
import { initial } from "./001-initial.js";
import { policyVersion } from "./002-policy-version.js";
import { provisioning } from "./003-provisioning.js";
import { acme } from "./004-acme.js";
import { trustVersion } from "./005-trust-version.js";
import { enrolmentRequesters } from "./006-enrolment-requesters.js";
import { hostEvidence } from "./007-host-evidence.js";
import { settings } from "./008-settings.js";
import { caPending } from "./009-ca-pending.js";
import { policiesVersion } from "./010-policies-version.js";
import { ekRevocations } from "./011-ek-revocations.js";
import { auditTree } from "./012-audit-tree.js";
import { imaState } from "./013-ima-state.js";

/**
 * A versioned schema change. To add one: a new file `NNN-what.ts` exporting a Migration with the
 * next version, appended to MIGRATIONS. Never edit a migration that has shipped.
 */
export interface Migration {
  version: number;
  name: string;
  up(tx: Ctx): Promise<void>;
}

export const MIGRATIONS: readonly Migration[] = [initial, policyVersion, provisioning, acme, trustVersion, enrolmentRequesters, hostEvidence, settings, caPending, policiesVersion, ekRevocations, auditTree, imaState];

/**
 * Applies the migrations the database lacks, in one transaction. Idempotent, and safe when several
 * service instances start at once: on PostgreSQL they queue on an advisory lock, on SQLite on the
 * write lock (BEGIN IMMEDIATE); whoever comes second finds nothing left to do.
 */
export async function migrate(ctx: Ctx, migrations: readonly Migration[] = MIGRATIONS, at = Date.now()): Promise<{ version: number; applied: number[] }> {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].version <= migrations[i - 1].version) throw new TpmTrustError("ERR_INTERNAL", `migration versions out of order at ${migrations[i].version}`);
  }
  return ctx.transaction(async (tx) => {
    await tx.lock("migrations");
    await tx.db.schema
      .createTable("schema_migrations")
      .ifNotExists()
      .addColumn("version", "integer", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("applied_at", "bigint", (c) => c.notNull())
      .execute();
    const done = new Set((await tx.db.selectFrom("schema_migrations").select("version").execute()).map((r) => r.version));
    const newest = Math.max(0, ...done);
    const known = migrations.at(-1)?.version ?? 0;
    if (newest > known) {
      throw new TpmTrustError("ERR_CONFLICT", `the database has schema version ${newest}, newer than this tpmtrust knows (${known}): upgrade tpmtrust`);
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await m.up(tx);
      await tx.db.insertInto("schema_migrations").values({ version: m.version, name: m.name, applied_at: at }).execute();
      applied.push(m.version);
    }
    return { version: Math.max(newest, ...applied), applied };
  });
}
