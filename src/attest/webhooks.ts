/**
 * Webhook notifications: events are queued in the store (webhook_deliveries) in the same
 * transaction as the change they report, then POSTed by whichever instance claims them first.
 * Each POST carries `X-Tpmtrust-Signature: sha256=<hex HMAC-SHA256(secret, body)>`; a non-2xx answer
 * or a network error is retried with exponential backoff until `webhookAttempts` are spent.
 */
import { createHmac } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import type { Delivery, Store, Webhook } from "../store/index.js";
import type { AttestConfig } from "./config.js";

const SIGNATURE_HEADER = "x-tpmtrust-signature";

function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/** The exact bytes POSTed for a delivery: the same on every retry. */
function deliveryBody(d: Delivery): string {
  return JSON.stringify({ id: d.id, event: d.event, createdAt: d.createdAt, data: d.payload });
}

async function post(hook: Webhook, d: Delivery, timeoutMs: number): Promise<{ status?: number; error?: string }> {
  const body = deliveryBody(d);
  try {
    const r = await fetch(hook.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: signBody(hook.secret, body),
        "x-tpmtrust-event": d.event,
        "x-tpmtrust-delivery": d.id,
      },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    await r.body?.cancel().catch(() => undefined);
    return r.status >= 200 && r.status < 300 ? { status: r.status } : { status: r.status, error: `HTTP ${r.status}` };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/**
 * Sends the deliveries that are due (claimed atomically, so several instances never send the same
 * attempt twice); returns how many were attempted.
 */
export async function deliverDue(store: Store, cfg: AttestConfig, now: () => number): Promise<number> {
  const due = await store.webhooks.claimDue({ at: now(), leaseMs: cfg.webhookTimeoutMs * 2 });
  if (due.length === 0) return 0;
  const hooks = new Map((await store.webhooks.list({ includeDisabled: true })).map((h) => [h.id, h]));
  await Promise.all(
    due.map(async (d) => {
      const hook = hooks.get(d.webhookId);
      if (!hook || hook.disabledAt !== null) {
        await store.webhooks.markFailed(d.id, { error: "the webhook was removed or disabled", retryAt: null });
        return;
      }
      const r = await post(hook, d, cfg.webhookTimeoutMs);
      if (!r.error) await store.webhooks.markDelivered(d.id, { status: r.status!, at: now() });
      else {
        const retryAt = d.attempts < cfg.webhookAttempts ? now() + cfg.webhookBackoffMs * 2 ** (d.attempts - 1) : null;
        await store.webhooks.markFailed(d.id, { status: r.status ?? null, error: r.error, retryAt });
      }
    }),
  );
  return due.length;
}

// ---- administration

export const WEBHOOK_EVENTS = ["host.health"] as const;

export type WebhookView = Omit<Webhook, "secret">;
const webhookView = ({ secret: _secret, ...w }: Webhook): WebhookView => w;

/** Subscribes a URL (http or https) to events; the secret signs every delivery. Audited (without the secret). */
export async function addWebhook(store: Store, actor: string, now: number, o: { url: string; secret: string; events?: string[] }): Promise<WebhookView> {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new TpmTrustError("ERR_VALIDATION", `webhook url ${JSON.stringify(o.url)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new TpmTrustError("ERR_VALIDATION", "a webhook url must be http:// or https://");
  if (url.username || url.password) throw new TpmTrustError("ERR_VALIDATION", "a webhook url must not carry credentials; deliveries are signed with the secret");
  return store.transaction(async (tx) => {
    const w = await tx.webhooks.subscribe({ url: url.toString(), secret: o.secret, events: o.events, at: now });
    await tx.audit.append({ actor, action: "webhook.add", subject: w.id, outcome: "success", details: { url: w.url, events: w.events }, at: now });
    return webhookView(w);
  });
}

export async function removeWebhook(store: Store, actor: string, now: number, id: string): Promise<void> {
  await store.transaction(async (tx) => {
    if (!(await tx.webhooks.remove(id))) throw new TpmTrustError("ERR_NOT_FOUND", `webhook ${id} not found`);
    await tx.audit.append({ actor, action: "webhook.remove", subject: id, outcome: "success", at: now });
  });
}

/** Every subscription, disabled ones too (secrets are never shown). */
export const listWebhooks = async (store: Store): Promise<WebhookView[]> => (await store.webhooks.list({ includeDisabled: true })).map(webhookView);

/** A subscription's delivery records, newest first. */
export async function webhookDeliveries(store: Store, id: string, limit: number): Promise<Delivery[]> {
  if (!(await store.webhooks.list({ includeDisabled: true })).some((w) => w.id === id)) throw new TpmTrustError("ERR_NOT_FOUND", `webhook ${id} not found`);
  return store.webhooks.listDeliveries({ webhookId: id, limit });
}
