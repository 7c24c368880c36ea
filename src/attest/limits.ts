/**
 * Limits on the public attestation endpoints (challenges per AK, activations started per host),
 * counted in the database so that they hold across service instances. They bound what an
 * unauthenticated caller who knows an AK or EK public can make the service store and compute.
 */
import type { Store } from "../store/index.js";

/** Counts one call on `key` (see RateLimits.take: ERR_TOO_MANY_ATTEMPTS, 429 with Retry-After, past `limit` calls in a window). `limit` 0: none. */
export async function countCall(store: Store, key: string, o: { limit: number; windowMs: number; at: number; what: string }): Promise<void> {
  if (o.limit > 0) await store.rateLimits.take(key, o);
}
