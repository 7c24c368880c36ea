import { randomUUID } from "node:crypto";
import { type Ctx, affected, fromJson, insertOrConflict, notFound, toJson } from "../ctx.js";
import type { WebhookDeliveriesTable, WebhooksTable } from "../schema.js";

export interface Webhook {
  id: string;
  url: string;
  /** HMAC key the deliveries are signed with */
  secret: string;
  /** event names it wants; [] = all */
  events: string[];
  createdAt: number;
  disabledAt: number | null;
}

export interface Delivery {
  id: string;
  webhookId: string;
  event: string;
  payload: unknown;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number | null;
  deliveredAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
}

const toWebhook = (r: WebhooksTable): Webhook => ({ id: r.id, url: r.url, secret: r.secret, events: fromJson<string[]>(r.events), createdAt: r.created_at, disabledAt: r.disabled_at });
const toDelivery = (r: WebhookDeliveriesTable): Delivery => ({
  id: r.id,
  webhookId: r.webhook_id,
  event: r.event,
  payload: fromJson(r.payload),
  createdAt: r.created_at,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  deliveredAt: r.delivered_at,
  lastStatus: r.last_status,
  lastError: r.last_error,
});

/** Webhook subscriptions and a delivery queue that several instances can drain without double sends. */
export function webhooksRepo(ctx: Ctx) {
  return {
    async subscribe(o: { url: string; secret: string; events?: string[]; at: number }): Promise<Webhook> {
      const row: WebhooksTable = { id: randomUUID(), url: o.url, secret: o.secret, events: toJson(o.events ?? []), created_at: o.at, disabled_at: null };
      await ctx.db.insertInto("webhooks").values(row).execute();
      return toWebhook(row);
    },
    async list(o: { includeDisabled?: boolean } = {}): Promise<Webhook[]> {
      let q = ctx.db.selectFrom("webhooks").selectAll();
      if (!o.includeDisabled) q = q.where("disabled_at", "is", null);
      return (await q.orderBy("created_at").orderBy("id").execute()).map(toWebhook);
    },
    async setEnabled(id: string, enabled: boolean, at: number): Promise<void> {
      if (affected(await ctx.db.updateTable("webhooks").set({ disabled_at: enabled ? null : at }).where("id", "=", id).executeTakeFirst()) === 0) throw notFound(`webhook ${id}`);
    },
    async remove(id: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("webhooks").where("id", "=", id).executeTakeFirst()) > 0;
    },

    /** Queues `event` for every enabled subscription that wants it; returns the deliveries. */
    enqueue: (event: string, payload: unknown, at: number): Promise<Delivery[]> =>
      ctx.transaction(async (tx) => {
        const hooks = (await webhooksRepo(tx).list()).filter((h) => h.events.length === 0 || h.events.includes(event));
        const out: Delivery[] = [];
        for (const h of hooks) {
          const row: WebhookDeliveriesTable = {
            id: randomUUID(),
            webhook_id: h.id,
            event,
            payload: toJson(payload),
            created_at: at,
            attempts: 0,
            next_attempt_at: at,
            delivered_at: null,
            last_status: null,
            last_error: null,
          };
          await insertOrConflict(tx.db.insertInto("webhook_deliveries").values(row).execute(), "delivery id collision", `webhook ${h.id} not found`);
          out.push(toDelivery(row));
        }
        return out;
      }),

    /**
     * Claims up to `limit` due deliveries: each claim is one conditional UPDATE that pushes
     * next_attempt_at to at + leaseMs and counts the attempt, so one instance sends each attempt.
     */
    async claimDue(o: { at: number; leaseMs: number; limit?: number }): Promise<Delivery[]> {
      const at = o.at;
      const due = await ctx.db
        .selectFrom("webhook_deliveries")
        .select(["id", "next_attempt_at"])
        .where("next_attempt_at", "<=", at)
        .orderBy("next_attempt_at")
        .limit(o.limit ?? 50)
        .execute();
      const out: Delivery[] = [];
      for (const d of due) {
        const r = await ctx.db
          .updateTable("webhook_deliveries")
          .set((eb) => ({ next_attempt_at: at + o.leaseMs, attempts: eb("attempts", "+", 1) }))
          .where("id", "=", d.id)
          .where("next_attempt_at", "=", d.next_attempt_at)
          .returningAll()
          .executeTakeFirst();
        if (r) out.push(toDelivery(r));
      }
      return out;
    },
    async markDelivered(id: string, o: { status: number; at: number }): Promise<void> {
      await ctx.db.updateTable("webhook_deliveries").set({ delivered_at: o.at, next_attempt_at: null, last_status: o.status, last_error: null }).where("id", "=", id).execute();
    },
    /** Records a failed attempt; `retryAt` null gives up. */
    async markFailed(id: string, o: { status?: number | null; error: string; retryAt: number | null }): Promise<void> {
      await ctx.db.updateTable("webhook_deliveries").set({ next_attempt_at: o.retryAt, last_status: o.status ?? null, last_error: o.error }).where("id", "=", id).execute();
    },
    async listDeliveries(o: { webhookId?: string; limit?: number } = {}): Promise<Delivery[]> {
      let q = ctx.db.selectFrom("webhook_deliveries").selectAll();
      if (o.webhookId) q = q.where("webhook_id", "=", o.webhookId);
      return (await q.orderBy("created_at", "desc").orderBy("id").limit(o.limit ?? 100).execute()).map(toDelivery);
    },
  };
}
