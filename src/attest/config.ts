import { DEFAULT_TOKEN_ISSUER } from "../tokens/tokens.js";
import type { Admission } from "./settings.js";

/** Settings of the attestation service; every duration is in milliseconds. */
export interface AttestConfig {
  /** how long a challenge nonce may be answered */
  nonceTtlMs: number;
  /** lifetime of an attestation token */
  tokenTtlMs: number;
  /** a new token signing key is made once the current one is this old */
  keyRotationMs: number;
  /** how often hosts are expected to attest (`tpmtrust agent run` interval) */
  intervalMs: number;
  /** a host is silent, hence unhealthy, `intervalMs × grace` after its last attestation */
  grace: number;
  /** how often the health sweeper looks for silent hosts and due webhook deliveries */
  sweepMs: number;
  /** webhook delivery attempts before giving up, and the first retry delay (doubled each time) */
  webhookAttempts: number;
  webhookBackoffMs: number;
  /** per-attempt timeout of a webhook POST */
  webhookTimeoutMs: number;
  /** `iss` of attestation tokens */
  issuer: string;
  /** judgements of unchanged boots (log, PCR values, policy versions) kept per process; 0 disables */
  judgementCacheSize: number;
  /** worker threads that verify quotes while the event loop is busy (0: always on the event loop's thread) */
  verifyThreads: number;
  /**
   * Public endpoints, counted per client address in the database per `limitWindowMs` (so across
   * instances): attestation challenges, activations started, and stored nonces minted by
   * `POST /v1/ca/challenge` and by ACME (new-nonce and the Replay-Nonce of every answer), each
   * counted on its own. Past a limit: ERR_TOO_MANY_ATTEMPTS (429). 0: no limit.
   */
  challengeLimit: number;
  activationLimit: number;
  nonceLimit: number;
  limitWindowMs: number;
  /** `serve --admit … --default-class …`: overrides the database's admit and default-class settings */
  admission?: Admission;
}

export const DEFAULT_ATTEST_CONFIG: AttestConfig = {
  nonceTtlMs: 60_000,
  tokenTtlMs: 10 * 60_000,
  keyRotationMs: 24 * 3_600_000,
  intervalMs: 100_000,
  grace: 3,
  sweepMs: 5_000,
  webhookAttempts: 8,
  webhookBackoffMs: 1_000,
  webhookTimeoutMs: 5_000,
  issuer: DEFAULT_TOKEN_ISSUER,
  judgementCacheSize: 10_000,
  verifyThreads: 0,
  challengeLimit: 600,
  activationLimit: 60,
  nonceLimit: 300,
  limitWindowMs: 60_000,
};

export function attestConfig(o: Partial<AttestConfig> = {}): AttestConfig {
  return { ...DEFAULT_ATTEST_CONFIG, ...o };
}
