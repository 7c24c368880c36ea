/**
 * What individual enrollments and enrollment groups share: initial twin, allocation,
 * reprovisioning policy and enabled flag — validation, patch merging, and how operators see them.
 */
import { TpmTrustError } from "../errors.js";
import type { ReprovisionPolicy } from "../store/index.js";
import { checkAllocation, DEFAULT_ALLOCATION, redactAllocation, type AllocationSettings } from "./allocation.js";
import { checkTwin, type Twin } from "./twin.js";

export const REPROVISION_POLICIES: readonly ReprovisionPolicy[] = ["reprovision-and-migrate", "reprovision-and-reset", "never"];

export interface SettingsInput {
  initialTwin?: unknown;
  allocation?: unknown;
  reprovisionPolicy?: ReprovisionPolicy;
  enabled?: boolean;
}

/** The settings as stored. */
export interface Settings {
  initialTwin: Record<string, unknown> | null;
  allocation: Record<string, unknown>;
  reprovisionPolicy: ReprovisionPolicy;
  enabled: boolean;
}

/** Validates the settings, filling defaults: hashed allocation, reprovision-and-migrate, enabled. */
export function checkSettings(i: SettingsInput): Settings {
  if (i.reprovisionPolicy !== undefined && !REPROVISION_POLICIES.includes(i.reprovisionPolicy)) {
    throw new TpmTrustError("ERR_VALIDATION", `reprovisionPolicy must be one of ${REPROVISION_POLICIES.join(", ")}`);
  }
  return {
    initialTwin: i.initialTwin === undefined || i.initialTwin === null ? null : (checkTwin(i.initialTwin) as Record<string, unknown>),
    allocation: checkAllocation(i.allocation ?? DEFAULT_ALLOCATION) as unknown as Record<string, unknown>,
    reprovisionPolicy: i.reprovisionPolicy ?? "reprovision-and-migrate",
    enabled: i.enabled ?? true,
  };
}

/** `patch` over `current`: given fields win (an initialTwin of null removes it). */
export function mergeSettings(patch: SettingsInput, current: Settings): SettingsInput {
  return {
    initialTwin: patch.initialTwin !== undefined ? patch.initialTwin : current.initialTwin,
    allocation: patch.allocation ?? current.allocation,
    reprovisionPolicy: patch.reprovisionPolicy ?? current.reprovisionPolicy,
    enabled: patch.enabled ?? current.enabled,
  };
}

/** The settings as operators see them (and as audited): the webhook secret stays in the store. */
export function settingsView(s: Settings): { initialTwin: Twin | null; allocation: Record<string, unknown>; reprovisionPolicy: ReprovisionPolicy; enabled: boolean } {
  return { initialTwin: s.initialTwin as Twin | null, allocation: redactAllocation(s.allocation as unknown as AllocationSettings), reprovisionPolicy: s.reprovisionPolicy, enabled: s.enabled };
}
