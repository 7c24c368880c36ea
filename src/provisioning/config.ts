/** Settings of the device registration API; durations in milliseconds. */
import type { Store } from "../store/index.js";
import type { DeviceKeyWrapper } from "./device-keys.js";

export interface ProvisioningConfig {
  /** challenges (401 with an authenticationKey) per client address and window */
  challengeLimit: number;
  /**
   * failed SAS checks per registration id, and per client address, and window; beyond either, a
   * call whose SAS does not verify is 429 (not counted or audited further) until the window ends.
   * A call with a valid SAS is never refused by them.
   */
  authFailureLimit: number;
  sourceFailureLimit: number;
  /** window of both limits */
  limitWindowMs: number;
  /** a challenge's key is valid for the period it was issued in and the next one */
  challengePeriodMs: number;
  /** longest SAS token lifetime accepted (se − now) */
  maxSasLifetimeMs: number;
  /** seconds devices are told to wait before polling an operation (Retry-After) */
  retryAfterSeconds: number;
}

export const DEFAULT_PROVISIONING_CONFIG: ProvisioningConfig = {
  challengeLimit: 100,
  authFailureLimit: 5,
  sourceFailureLimit: 20,
  limitWindowMs: 15 * 60_000,
  challengePeriodMs: 15 * 60_000,
  maxSasLifetimeMs: 24 * 3_600_000,
  retryAfterSeconds: 1,
};

/** What the device API's flows need. */
export interface ProvisioningDeps {
  store: Store;
  now: () => number;
  keys: DeviceKeyWrapper;
  config: ProvisioningConfig;
}

/** How the service is given its provisioning master key and limits. */
export interface ProvisioningOptions {
  /** 32 bytes (see master-key.ts); absent: a random key for this process only (tests) */
  masterKey?: Buffer;
  config?: Partial<ProvisioningConfig>;
}
