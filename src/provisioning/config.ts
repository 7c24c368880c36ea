/** Settings of the device registration API; durations in milliseconds. */
import type { Store } from "../store/index.js";
import type { DeviceKeyWrapper } from "./device-keys.js";

export interface ProvisioningConfig {
  /** challenges (401 with a new authenticationKey) per registration id and window */
  challengeLimit: number;
  /** failed SAS checks per registration id and window; beyond it every call is 429 until the window ends */
  authFailureLimit: number;
  /** window of both limits */
  limitWindowMs: number;
  /** longest SAS token lifetime accepted (se − now) */
  maxSasLifetimeMs: number;
  /** seconds devices are told to wait before polling an operation (Retry-After) */
  retryAfterSeconds: number;
}

export const DEFAULT_PROVISIONING_CONFIG: ProvisioningConfig = {
  challengeLimit: 10,
  authFailureLimit: 5,
  limitWindowMs: 15 * 60_000,
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
