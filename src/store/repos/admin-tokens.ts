import { createHash, randomBytes, randomUUID } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { type Ctx, affected } from "../ctx.js";

/**
 * Roles of API tokens (hosts authenticate with their bound AK, never with a token): admin, auditor
 * (read-only), enroller (may only request certificates, under the identity the token carries).
 */
export type AdminRole = "admin" | "auditor" | "enroller";

export interface AdminToken {
  id: string;
  role: AdminRole;
  label: string | null;
  /** enroller tokens: the requester's identity (absent on other tokens) */
  identity?: string;
  /** the principal it speaks for (`admin token create --name`); absent on unnamed tokens */
  name?: string;
  createdAt: number;
  revokedAt: number | null;
}

/** Tokens look like `tpmtrust_<43 base64url chars>` (256 random bits); only their SHA-256 is stored. */
const TOKEN_PREFIX = "tpmtrust_";
const tokenHash = (token: string) => createHash("sha256").update(token, "utf8").digest("hex");

/** Principal names: what audit entries and area groups (`config set admins.keys alice,bob`) name. */
export const PRINCIPAL_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$";

type Row = { id: string; role: string; label: string | null; identity: string | null; name: string | null; created_at: number; revoked_at: number | null };
const toToken = (r: Row): AdminToken => ({
  id: r.id,
  role: r.role as AdminRole,
  label: r.label,
  ...(r.identity ? { identity: r.identity } : {}),
  ...(r.name ? { name: r.name } : {}),
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});

export function adminTokensRepo(ctx: Ctx) {
  /** Creates a token; the returned `token` is shown once and cannot be recovered. */
  async function create(o: { role: AdminRole; label?: string | null; identity?: string | null; name?: string | null; at: number }): Promise<AdminToken & { token: string }> {
    if ((o.role === "enroller") !== Boolean(o.identity)) throw new TpmTrustError("ERR_USAGE", "an enroller token carries an identity, and only an enroller token does");
    if (o.name && !new RegExp(PRINCIPAL_NAME_PATTERN).test(o.name)) throw new TpmTrustError("ERR_USAGE", `a principal name must match ${PRINCIPAL_NAME_PATTERN}`);
    const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
    const row = { id: randomUUID(), token_hash: tokenHash(token), role: o.role, label: o.label ?? null, identity: o.identity ?? null, name: o.name ?? null, created_at: o.at, revoked_at: null };
    await ctx.db.insertInto("admin_tokens").values(row).execute();
    return { ...toToken(row), token };
  }

  return {
    create,
    /** First start: creates an admin token only if no token exists yet (once, even when instances start together). */
    createInitial: (o: { label?: string | null; at: number }): Promise<(AdminToken & { token: string }) | undefined> =>
      ctx.transaction(async (tx) => {
        await tx.lock("admin-tokens:initial");
        if (await tx.db.selectFrom("admin_tokens").select("id").limit(1).executeTakeFirst()) return undefined;
        return adminTokensRepo(tx).create({ role: "admin", label: o.label ?? "initial", at: o.at });
      }),
    /** The unrevoked token this secret belongs to, or undefined. */
    async verify(token: string): Promise<AdminToken | undefined> {
      if (!token.startsWith(TOKEN_PREFIX)) return undefined;
      const r = await ctx.db.selectFrom("admin_tokens").selectAll().where("token_hash", "=", tokenHash(token)).where("revoked_at", "is", null).executeTakeFirst();
      return r ? toToken(r) : undefined;
    },
    async list(): Promise<AdminToken[]> {
      const rows = await ctx.db.selectFrom("admin_tokens").selectAll().orderBy("created_at").orderBy("id").execute();
      return rows.map(toToken);
    },
    async revoke(id: string, at: number): Promise<boolean> {
      return affected(await ctx.db.updateTable("admin_tokens").set({ revoked_at: at }).where("id", "=", id).where("revoked_at", "is", null).executeTakeFirst()) > 0;
    },
    /** Revokes every active token of a principal; returns their ids. */
    async revokeByName(name: string, at: number): Promise<string[]> {
      const rows = await ctx.db.updateTable("admin_tokens").set({ revoked_at: at }).where("name", "=", name).where("revoked_at", "is", null).returning("id").execute();
      return rows.map((r) => r.id);
    },
  };
}
