import { createHash } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { type Ctx, affected, hex, unhex } from "../ctx.js";
import type { EkCaCertTable } from "../schema.js";

export interface AllowlistEntry {
  /** lowercase hex SHA-256 of the EK public key */
  ekHash: string;
  label: string | null;
  /** where the entry came from, e.g. "cli", "api" */
  source: string | null;
  addedAt: number;
}

export interface EkRevocation {
  /** lowercase hex SHA-256 of the EK public key */
  ekHash: string;
  reason: string | null;
  revokedAt: number;
}

export interface EkCaCert {
  /** lowercase hex SHA-256 of the DER */
  fingerprint: string;
  subject: string;
  der: Buffer;
  addedAt: number;
}

export type EkCaKind = "root" | "intermediate";

const caTable = (kind: EkCaKind) => (kind === "root" ? "ek_roots" : "ek_intermediates");
const toCaCert = (r: EkCaCertTable): EkCaCert => ({ fingerprint: r.fingerprint, subject: r.subject, der: unhex(r.cert), addedAt: r.added_at });

/** Allow-list entries are hex SHA-256 values, case-insensitive: stored lowercase. */
export function normalizeEkHash(h: string): string {
  const s = h.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(s)) throw new TpmTrustError("ERR_VALIDATION", `not a hex SHA-256 EK hash: ${JSON.stringify(h)}`);
  return s;
}

/** Bumps the trust version when `changed`, in the change's transaction; returns `changed`. */
async function bumped(ctx: Ctx, changed: boolean): Promise<boolean> {
  if (changed) await ctx.db.updateTable("trust_version").set((eb) => ({ version: eb("version", "+", 1) })).where("id", "=", 1).execute();
  return changed;
}

/**
 * EK trust configuration: the allow-list, manufacturer roots (EKROOT) and intermediates (EKCA),
 * allow-list directories. Every change bumps one version counter, so cached trust evaluations of
 * every instance see it at their next decision.
 */
export function trustRepo(ctx: Ctx) {
  return {
    /** The trust version: changes whenever anything below changes (one row, read on every trusted decision). */
    async version(): Promise<number> {
      const r = await ctx.db.selectFrom("trust_version").select("version").where("id", "=", 1).executeTakeFirst();
      return Number(r?.version ?? 0);
    },

    /** Adds (or keeps) an allow-list entry; returns false if it was already present. */
    addAllowlist: (ekHash: string, o: { label?: string | null; source?: string | null; at: number }): Promise<boolean> =>
      ctx.transaction(async (tx) => {
        const r = await tx.db
          .insertInto("ek_allowlist")
          .values({ ek_hash: normalizeEkHash(ekHash), label: o.label ?? null, source: o.source ?? null, added_at: o.at })
          .onConflict((oc) => oc.column("ek_hash").doNothing())
          .executeTakeFirst();
        return bumped(tx, Number(r.numInsertedOrUpdatedRows ?? 0n) > 0);
      }),
    removeAllowlist: (ekHash: string): Promise<boolean> =>
      ctx.transaction(async (tx) => bumped(tx, affected(await tx.db.deleteFrom("ek_allowlist").where("ek_hash", "=", normalizeEkHash(ekHash)).executeTakeFirst()) > 0)),
    async isAllowlisted(ekHash: string): Promise<boolean> {
      return (await ctx.db.selectFrom("ek_allowlist").select("ek_hash").where("ek_hash", "=", normalizeEkHash(ekHash)).executeTakeFirst()) !== undefined;
    },
    async listAllowlist(): Promise<AllowlistEntry[]> {
      const rows = await ctx.db.selectFrom("ek_allowlist").selectAll().orderBy("ek_hash").execute();
      return rows.map((r) => ({ ekHash: r.ek_hash, label: r.label, source: r.source, addedAt: r.added_at }));
    },

    /** Revokes an EK by its hash (or keeps the revocation); returns false if it was already revoked. */
    revokeEk: (ekHash: string, o: { reason?: string | null; at: number }): Promise<boolean> =>
      ctx.transaction(async (tx) => {
        const r = await tx.db
          .insertInto("ek_revocations")
          .values({ ek_hash: normalizeEkHash(ekHash), reason: o.reason ?? null, revoked_at: o.at })
          .onConflict((oc) => oc.column("ek_hash").doNothing())
          .executeTakeFirst();
        return bumped(tx, Number(r.numInsertedOrUpdatedRows ?? 0n) > 0);
      }),
    unrevokeEk: (ekHash: string): Promise<boolean> =>
      ctx.transaction(async (tx) => bumped(tx, affected(await tx.db.deleteFrom("ek_revocations").where("ek_hash", "=", normalizeEkHash(ekHash)).executeTakeFirst()) > 0)),
    async listRevokedEks(): Promise<EkRevocation[]> {
      const rows = await ctx.db.selectFrom("ek_revocations").selectAll().orderBy("ek_hash").execute();
      return rows.map((r) => ({ ekHash: r.ek_hash, reason: r.reason, revokedAt: Number(r.revoked_at) }));
    },

    /** Adds a root or intermediate certificate (DER); `subject` is for display. Returns false if already present. */
    addCaCert: (kind: EkCaKind, der: Uint8Array, subject: string, at: number): Promise<{ fingerprint: string; added: boolean }> =>
      ctx.transaction(async (tx) => {
        const fingerprint = createHash("sha256").update(der).digest("hex");
        const r = await tx.db
          .insertInto(caTable(kind))
          .values({ fingerprint, subject, cert: hex(der), added_at: at })
          .onConflict((oc) => oc.column("fingerprint").doNothing())
          .executeTakeFirst();
        return { fingerprint, added: await bumped(tx, Number(r.numInsertedOrUpdatedRows ?? 0n) > 0) };
      }),
    removeCaCert: (kind: EkCaKind, fingerprint: string): Promise<boolean> =>
      ctx.transaction(async (tx) => bumped(tx, affected(await tx.db.deleteFrom(caTable(kind)).where("fingerprint", "=", fingerprint.toLowerCase()).executeTakeFirst()) > 0)),
    async listCaCerts(kind: EkCaKind): Promise<EkCaCert[]> {
      return (await ctx.db.selectFrom(caTable(kind)).selectAll().orderBy("subject").orderBy("fingerprint").execute()).map(toCaCert);
    },

    /** AD CS-style directories of zero-byte files named by EK hash; the trust layer scans them on each check. */
    addAllowlistDir: (path: string, at: number): Promise<boolean> =>
      ctx.transaction(async (tx) => {
        const r = await tx.db
          .insertInto("allowlist_dirs")
          .values({ path, added_at: at })
          .onConflict((oc) => oc.column("path").doNothing())
          .executeTakeFirst();
        return bumped(tx, Number(r.numInsertedOrUpdatedRows ?? 0n) > 0);
      }),
    removeAllowlistDir: (path: string): Promise<boolean> =>
      ctx.transaction(async (tx) => bumped(tx, affected(await tx.db.deleteFrom("allowlist_dirs").where("path", "=", path).executeTakeFirst()) > 0)),
    async listAllowlistDirs(): Promise<{ path: string; addedAt: number }[]> {
      return (await ctx.db.selectFrom("allowlist_dirs").selectAll().orderBy("path").execute()).map((r) => ({ path: r.path, addedAt: r.added_at }));
    },
  };
}
