import { type Ctx, affected, toJson } from "../ctx.js";

/** Service settings by key, each a JSON value (what the keys mean: src/attest/settings.ts). */
export function settingsRepo(ctx: Ctx) {
  return {
    async get<T>(key: string): Promise<T | undefined> {
      const r = await ctx.db.selectFrom("settings").select("value").where("key", "=", key).executeTakeFirst();
      return r ? (JSON.parse(r.value) as T) : undefined;
    },
    async list(): Promise<Record<string, unknown>> {
      const rows = await ctx.db.selectFrom("settings").selectAll().orderBy("key").execute();
      return Object.fromEntries(rows.map((r) => [r.key, JSON.parse(r.value) as unknown]));
    },
    async set(key: string, value: unknown, at: number): Promise<void> {
      const row = { key, value: toJson(value), updated_at: at };
      await ctx.db.insertInto("settings").values(row).onConflict((oc) => oc.column("key").doUpdateSet({ value: row.value, updated_at: at })).execute();
    },
    /** false when the key was not set */
    async remove(key: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("settings").where("key", "=", key).executeTakeFirst()) > 0;
    },
  };
}
