/**
 * Which linked hub a device goes to (DPS allocation policies):
 * - `hashed` (DPS "evenly weighted distribution"): weighted rendezvous hashing of the registration
 *   id over the candidate hubs, so a device keeps its hub while hubs are added or removed elsewhere;
 * - `static`: one named hub;
 * - `custom`: a webhook answers (POST of the registration context, body signed with HMAC-SHA256,
 *   bounded by a timeout).
 * DPS's "lowest latency" policy is out of scope: tpmtrust does not measure latency to hubs.
 */
import { createHash, createHmac } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import type { Hub } from "../store/index.js";
import { checkTwin, type Twin } from "./twin.js";

export type AllocationPolicy = "hashed" | "static" | "custom";

export interface CustomWebhook {
  url: string;
  /** HMAC-SHA256 key of `X-Tpmtrust-Signature: sha256=<hex>` over the body */
  secret: string;
  /** per-call timeout, ms (default 5000, at most 30000) */
  timeoutMs?: number;
}

export interface AllocationSettings {
  policy: AllocationPolicy;
  /** hashed: the candidate hubs by name (default: every hub with a weight above 0) */
  hubs?: string[];
  /** static: the hub's name */
  hub?: string;
  /** custom */
  webhook?: CustomWebhook;
}

export const DEFAULT_ALLOCATION: AllocationSettings = { policy: "hashed" };
const DEFAULT_WEBHOOK_TIMEOUT_MS = 5_000;
const MAX_WEBHOOK_TIMEOUT_MS = 30_000;
const MAX_WEBHOOK_ANSWER = 64 * 1024;
const SIGNATURE_HEADER = "x-tpmtrust-signature";

/** The JSON schema of allocation settings (admin API). */
export const ALLOCATION_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["policy"],
  properties: {
    policy: { type: "string", enum: ["hashed", "static", "custom"] },
    hubs: { type: "array", maxItems: 100, items: { type: "string", minLength: 1, maxLength: 128 } },
    hub: { type: "string", minLength: 1, maxLength: 128 },
    webhook: {
      type: "object",
      additionalProperties: false,
      required: ["url", "secret"],
      properties: {
        url: { type: "string", pattern: "^https?://", maxLength: 2048 },
        secret: { type: "string", minLength: 16, maxLength: 256 },
        timeoutMs: { type: "integer", minimum: 100, maximum: MAX_WEBHOOK_TIMEOUT_MS },
      },
    },
  },
} as const;

const bad = (message: string) => new TpmTrustError("ERR_VALIDATION", message);

/** Validates allocation settings (the shape, and that each policy has exactly what it needs). */
export function checkAllocation(v: unknown): AllocationSettings {
  if (!v || typeof v !== "object" || Array.isArray(v)) throw bad("allocation must be an object");
  const a = v as Record<string, unknown>;
  for (const k of Object.keys(a)) if (!["policy", "hubs", "hub", "webhook"].includes(k)) throw bad(`allocation has an unknown field ${k}`);
  const str = (x: unknown) => typeof x === "string" && x.length > 0 && x.length <= 128;
  switch (a.policy) {
    case "hashed":
      if (a.hub !== undefined || a.webhook !== undefined) throw bad("hashed allocation takes only `hubs`");
      if (a.hubs !== undefined && (!Array.isArray(a.hubs) || a.hubs.length === 0 || !a.hubs.every(str))) throw bad("allocation.hubs must be a non-empty list of hub names");
      return { policy: "hashed", ...(a.hubs ? { hubs: [...(a.hubs as string[])] } : {}) };
    case "static":
      if (!str(a.hub) || a.hubs !== undefined || a.webhook !== undefined) throw bad("static allocation takes exactly `hub` (a hub name)");
      return { policy: "static", hub: a.hub as string };
    case "custom": {
      const w = a.webhook as Record<string, unknown> | undefined;
      if (!w || typeof w !== "object" || a.hub !== undefined) throw bad("custom allocation takes `webhook: {url, secret, timeoutMs?}` and optionally `hubs`");
      for (const k of Object.keys(w)) if (!["url", "secret", "timeoutMs"].includes(k)) throw bad(`allocation.webhook has an unknown field ${k}`);
      let url: URL;
      try {
        url = new URL(String(w.url));
      } catch {
        throw bad("allocation.webhook.url is not a URL");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") throw bad("allocation.webhook.url must be http(s)");
      if (typeof w.secret !== "string" || w.secret.length < 16) throw bad("allocation.webhook.secret must have at least 16 characters");
      const t = w.timeoutMs;
      if (t !== undefined && (!Number.isInteger(t) || (t as number) < 100 || (t as number) > MAX_WEBHOOK_TIMEOUT_MS)) throw bad(`allocation.webhook.timeoutMs must be 100 to ${MAX_WEBHOOK_TIMEOUT_MS}`);
      if (a.hubs !== undefined && (!Array.isArray(a.hubs) || a.hubs.length === 0 || !a.hubs.every(str))) throw bad("allocation.hubs must be a non-empty list of hub names");
      return { policy: "custom", webhook: { url: url.toString(), secret: w.secret, ...(t !== undefined ? { timeoutMs: t as number } : {}) }, ...(a.hubs ? { hubs: [...(a.hubs as string[])] } : {}) };
    }
    default:
      throw bad("allocation.policy must be hashed, static or custom (lowest latency is not supported)");
  }
}

/** Allocation settings as shown to operators: the webhook secret never leaves the store. */
export function redactAllocation(a: AllocationSettings): Record<string, unknown> {
  return a.webhook ? { ...a, webhook: { url: a.webhook.url, secret: "(set)", ...(a.webhook.timeoutMs ? { timeoutMs: a.webhook.timeoutMs } : {}) } } : { ...a };
}

/** A uniform value in (0, 1) from SHA-256(registration id ‖ 0 ‖ hub name). */
function unit(registrationId: string, hub: string): number {
  const h = createHash("sha256").update(registrationId.toLowerCase()).update("\0").update(hub).digest();
  const v = h.readUIntBE(0, 6); // 48 bits
  return (v + 0.5) / 2 ** 48;
}

/**
 * Weighted rendezvous hashing: the hub with the highest weight / −ln(u) wins. Each hub gets a
 * share of devices proportional to its weight; hubs of weight 0 get none.
 */
export function pickHashed(registrationId: string, hubs: readonly Hub[]): Hub | undefined {
  let best: { hub: Hub; score: number } | undefined;
  for (const hub of hubs) {
    if (hub.weight <= 0) continue;
    const score = hub.weight / -Math.log(unit(registrationId, hub.name));
    if (!best || score > best.score || (score === best.score && hub.name < best.hub.name)) best = { hub, score };
  }
  return best?.hub;
}

/** What the custom allocation webhook receives (DPS's custom allocation request, TPM only). */
export interface CustomAllocationRequest {
  individualEnrollment?: { registrationId: string; deviceId: string | null; initialTwin: Twin | null };
  enrollmentGroup?: { enrollmentGroupId: string; initialTwin: Twin | null };
  deviceRuntimeContext: {
    registrationId: string;
    currentIotHubHostName: string | null;
    currentDeviceId: string | null;
    tpm: { endorsementKey: string; storageRootKey: string };
    payload?: unknown;
  };
  linkedHubs: string[];
}

export interface CustomAllocationAnswer {
  iotHubHostName: string;
  initialTwin?: Twin;
  payload?: unknown;
}

function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/**
 * POSTs the request to the webhook and returns its answer. Any failure (network, timeout, non-2xx,
 * an answer that is not `{iotHubHostName, initialTwin?, payload?}`) is ERR_UNREACHABLE.
 */
export async function callCustomAllocation(w: CustomWebhook, req: CustomAllocationRequest): Promise<CustomAllocationAnswer> {
  const body = JSON.stringify(req);
  const fail = (why: string) => new TpmTrustError("ERR_UNREACHABLE", `the custom allocation webhook ${new URL(w.url).origin} ${why}`);
  let text: string;
  try {
    const r = await fetch(w.url, {
      method: "POST",
      headers: { "content-type": "application/json", [SIGNATURE_HEADER]: signBody(w.secret, body) },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(w.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS),
    });
    if (r.status < 200 || r.status > 299) {
      await r.body?.cancel().catch(() => undefined);
      throw fail(`answered HTTP ${r.status}`);
    }
    text = await r.text();
  } catch (e) {
    if (e instanceof TpmTrustError) throw e;
    const name = (e as Error).name;
    throw fail(name === "TimeoutError" ? `did not answer within ${w.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS} ms` : `could not be reached (${(e as Error).message})`);
  }
  if (text.length > MAX_WEBHOOK_ANSWER) throw fail(`answered more than ${MAX_WEBHOOK_ANSWER} bytes`);
  let a: Record<string, unknown>;
  try {
    a = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw fail("answered something that is not JSON");
  }
  if (!a || typeof a !== "object" || typeof a.iotHubHostName !== "string" || a.iotHubHostName.length === 0) throw fail("answered without iotHubHostName");
  let initialTwin: Twin | undefined;
  if (a.initialTwin !== undefined && a.initialTwin !== null) {
    try {
      initialTwin = checkTwin(a.initialTwin);
    } catch (e) {
      throw fail(`answered an unusable initialTwin: ${(e as Error).message}`);
    }
  }
  return { iotHubHostName: a.iotHubHostName, ...(initialTwin ? { initialTwin } : {}), ...(a.payload !== undefined ? { payload: a.payload } : {}) };
}
