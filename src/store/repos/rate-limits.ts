import type { Ctx } from "../ctx.js";

/** Fixed-window counters in the database, so limits hold across service instances. */
export function rateLimitsRepo(ctx: Ctx) {
  return {
    /**
     * Counts one hit on `key` and returns the count in the current window (a window starts at the
     * first hit and lasts `windowMs`). One atomic upsert; the caller compares with its limit.
     */
    async hit(key: string, o: { windowMs: number; at?: number }): Promise<number> {
      const at = o.at ?? Date.now();
      const expired = at - o.windowMs;
      const row = await ctx.db
        .insertInto("rate_limits")
        .values({ key, window_start: at, count: 1 })
        .onConflict((oc) =>
          oc.column("key").doUpdateSet((eb) => ({
            count: eb.case().when("rate_limits.window_start", "<=", expired).then(1).else(eb("rate_limits.count", "+", 1)).end(),
            window_start: eb.case().when("rate_limits.window_start", "<=", expired).then(at).else(eb.ref("rate_limits.window_start")).end(),
          })),
        )
        .returning("count")
        .executeTakeFirstOrThrow();
      return row.count;
    },

    /** The count in the current window without counting a hit (0 when the window has passed). */
    async count(key: string, o: { windowMs: number; at?: number }): Promise<number> {
      const at = o.at ?? Date.now();
      const row = await ctx.db.selectFrom("rate_limits").select(["window_start", "count"]).where("key", "=", key).executeTakeFirst();
      return row && row.window_start > at - o.windowMs ? row.count : 0;
    },

    async reset(key: string): Promise<void> {
      await ctx.db.deleteFrom("rate_limits").where("key", "=", key).execute();
    },
  };
}
