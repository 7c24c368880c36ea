/**
 * Limits on the public attestation endpoints (challenges issued, activations started), counted per
 * client address in the database so that they hold across service instances. They bound what an
 * unauthenticated caller can make the service store and compute. They are never counted per AK or
 * per host: an AK's Name and an EK public are not secret, so a limit per AK or host would let anyone
 * who knows them lock the real host out. A caller over its limit is denied and audited once per
 * window, so a flood cannot grow the audit log either. Completing an activation (the TPM's proof)
 * and answering a challenge with a quote are never limited.
 */
import { TpmTrustError } from "../errors.js";
import type { Store } from "../store/index.js";

export interface SourceLimit {
  /** the client address */
  source: string;
  /** calls per window; 0: no limit */
  limit: number;
  windowMs: number;
}

/**
 * Counts one `kind` call from `l.source` (ERR_TOO_MANY_ATTEMPTS, 429 with Retry-After, past
 * `l.limit` calls in a window); the first refusal of a window is audited as `action`, denied.
 */
export async function countFromSource(store: Store, kind: "challenge" | "activation", l: SourceLimit, o: { action: string; subject: string | null; at: number }): Promise<void> {
  if (l.limit <= 0) return;
  try {
    await store.rateLimits.take(`${kind}:source:${l.source}`, { limit: l.limit, windowMs: l.windowMs, at: o.at, what: `${kind}s from ${l.source}` });
  } catch (e) {
    if (e instanceof TpmTrustError && e.code === "ERR_TOO_MANY_ATTEMPTS" && e.details?.count === l.limit + 1) {
      await store.audit.append({ actor: "anonymous", action: o.action, subject: o.subject, outcome: "denied", details: { code: e.code, source: l.source, calls: e.details.count }, at: o.at });
    }
    throw e;
  }
}
