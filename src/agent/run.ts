/**
 * `tpmtrust agent run`: continuous attestation. Attests every `interval`; after an error it retries
 * with exponential backoff (jittered, so a fleet that lost the service does not return in step),
 * until the signal aborts. A round in flight is finished, never cut off mid-command.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { isTpmTrustError } from "../errors.js";
import { attest, type AttestOptions } from "./attest.js";
import type { ServiceClient } from "./http.js";
import { readState } from "./state.js";
import { withTpm } from "./tpm.js";

export interface RunOptions extends AttestOptions {
  /** the `--tpm` value; the TPM is opened anew for every round, so a restarted TPM daemon is picked up */
  tpm: string;
  service: ServiceClient;
  intervalMs: number;
  signal: AbortSignal;
  log: Logger;
  random?: () => number;
}

export interface RunSummary {
  rounds: number;
  passed: number;
  failed: number;
  errors: number;
}

/** First retry after 1 s, doubling, capped at the larger of the interval and one minute; 50–100 % of that (jitter). */
export function backoffDelay(failures: number, intervalMs: number, random: () => number = Math.random): number {
  const cap = Math.max(intervalMs, 60_000);
  const full = Math.min(cap, 1000 * 2 ** Math.min(failures - 1, 30));
  return Math.round(full * (0.5 + random() / 2));
}

export async function run(o: RunOptions): Promise<RunSummary> {
  readState(o.stateDir); // no AK activated: stop now rather than retry forever
  const summary: RunSummary = { rounds: 0, passed: 0, failed: 0, errors: 0 };
  let failures = 0;
  const passedLog = {};
  o.log.info({ server: o.service.base.href, intervalMs: o.intervalMs }, "continuous attestation started");
  while (!o.signal.aborted) {
    let wait = o.intervalMs;
    summary.rounds++;
    try {
      const r = await withTpm(o.tpm, (tpm) => attest(tpm, o.service, { ...o, passedLog }));
      if (r.ima) o.log.info({ entriesVerified: r.ima.entriesVerified, nextIndex: r.ima.nextIndex, failures: r.ima.failures }, "IMA verified");
      failures = 0;
      if (r.verdict === "pass") summary.passed++;
      else {
        summary.failed++;
        o.log.warn({ host: r.host, code: r.code, diff: r.diff }, "attestation failed");
      }
    } catch (e) {
      failures++;
      summary.errors++;
      wait = backoffDelay(failures, o.intervalMs, o.random);
      o.log.error({ code: isTpmTrustError(e) ? e.code : "ERR_INTERNAL", err: (e as Error).message, failures, retryInMs: wait }, "attestation round did not complete");
    }
    await sleep(wait, undefined, { signal: o.signal }).catch(() => undefined);
  }
  o.log.info(summary, "continuous attestation stopped");
  return summary;
}
