import { TpmTrustError } from "../../errors.js";
import { type Ctx, affected } from "../ctx.js";

/** Fixed-window counters in the database, so limits hold across service instances. */
export function rateLimitsRepo(ctx: Ctx) {
  /**
   * Counts one hit on `key` and returns the count in the current window (a window starts at the
   * first hit and lasts `windowMs`). One atomic upsert; the caller compares with its limit.
   */
  async function hit(key: string, o: { windowMs: number; at: number }): Promise<number> {
    const at = o.at;
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
  }

  return {
    hit,

    /**
     * `hit`, then ERR_TOO_MANY_ATTEMPTS once the count passes `limit` (details: count, limit,
     * retryAfterSeconds; the message names `what` is limited). Returns the count.
     */
    async take(key: string, o: { limit: number; windowMs: number; at: number; what: string }): Promise<number> {
      const n = await hit(key, o);
      if (n > o.limit) {
        const retryAfterSeconds = Math.ceil(o.windowMs / 1000);
        throw new TpmTrustError("ERR_TOO_MANY_ATTEMPTS", `more than ${o.limit} ${o.what}; retry after ${retryAfterSeconds} s`, { count: n, limit: o.limit, retryAfterSeconds });
      }
      return n;
    },

    /** The count in the current window without counting a hit (0 when the window has passed). */
    async count(key: string, o: { windowMs: number; at: number }): Promise<number> {
      const at = o.at;
      const row = await ctx.db.selectFrom("rate_limits").select(["window_start", "count"]).where("key", "=", key).executeTakeFirst();
      return row && row.window_start > at - o.windowMs ? row.count : 0;
    },

    /** Deletes counters whose window began at or before `before` (they count nothing any more); returns how many. */
    async purge(before: number): Promise<number> {
      return affected(await ctx.db.deleteFrom("rate_limits").where("window_start", "<=", before).executeTakeFirst());
    },

    async reset(key: string): Promise<void> {
      await ctx.db.deleteFrom("rate_limits").where("key", "=", key).execute();
    },
  };
}
