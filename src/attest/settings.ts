/**
 * Service settings administrators change at run time (`tpmtrust config set KEY VALUE`,
 * `PUT /v1/config/{key}`), stored in the database so every instance sees them:
 *
 * - `admit`: how hosts are admitted. `registered` (default): only hosts an administrator registered
 *   (`hosts add`, `hosts import`). `ek-cert-chain`: also any host whose EK certificate chains to a
 *   trusted TPM CA, registered into `default-class` at its first AK activation (vSphere Trust
 *   Authority's default). `tpmtrust serve --admit … --default-class …` overrides both.
 * - `default-class`: the hardware class admitted hosts join.
 * - `admins.keys`, `admins.trust`, `admins.ca`, `admins.admin`: the principals (named admin tokens)
 *   allowed to call the admin routes of that area (key servers, providers and clusters; EK trust;
 *   the CA; tokens and settings). Unset: every admin.
 *
 * Each change is audited as config.set / config.unset.
 */
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import { PRINCIPAL_NAME_PATTERN, type Store } from "../store/index.js";
import type { Caller } from "../trust/trust.js";
import { HARDWARE_CLASS_PATTERN } from "./hosts.js";

export const ADMIT_MODES = ["registered", "ek-cert-chain"] as const;
export type AdmitMode = (typeof ADMIT_MODES)[number];
const ADMIN_AREAS = ["keys", "trust", "ca", "admin"] as const;
export type AdminArea = (typeof ADMIN_AREAS)[number];

export interface Admission {
  mode: AdmitMode;
  defaultClass: string | null;
}

interface SettingSpec {
  description: string;
  /** the stored value of the command-line text; throws ERR_VALIDATION */
  parse(text: string): unknown;
}

const bad = (key: string, message: string) => new TpmTrustError("ERR_VALIDATION", `${key}: ${message}`, { field: key });

const principals = (area: AdminArea): SettingSpec => ({
  description: `principals (named admin tokens) allowed to administer ${area}, comma-separated; unset: every admin`,
  parse(text) {
    const names = text.split(",").map((s) => s.trim()).filter(Boolean);
    if (names.length === 0) throw bad(`admins.${area}`, "name at least one principal (tpmtrust config unset removes the group)");
    for (const n of names) if (!new RegExp(PRINCIPAL_NAME_PATTERN).test(n)) throw bad(`admins.${area}`, `${JSON.stringify(n)} must match ${PRINCIPAL_NAME_PATTERN}`);
    return [...new Set(names)];
  },
});

export const SETTINGS: Record<string, SettingSpec> = {
  admit: {
    description: `how hosts are admitted: ${ADMIT_MODES.join(" or ")} (a trusted EK certificate chain admits a host into default-class at its first AK activation)`,
    parse(text) {
      if (!(ADMIT_MODES as readonly string[]).includes(text)) throw bad("admit", `must be ${ADMIT_MODES.join(" or ")}, got ${JSON.stringify(text)}`);
      return text;
    },
  },
  "default-class": {
    description: "the hardware class hosts admitted by their EK certificate chain join",
    parse(text) {
      if (!new RegExp(HARDWARE_CLASS_PATTERN).test(text)) throw bad("default-class", `must match ${HARDWARE_CLASS_PATTERN}`);
      return text;
    },
  },
  ...Object.fromEntries(ADMIN_AREAS.map((a) => [`admins.${a}`, principals(a)])),
};

function spec(key: string): SettingSpec {
  const s = Object.hasOwn(SETTINGS, key) ? SETTINGS[key] : undefined;
  if (!s) throw new TpmTrustError("ERR_NOT_FOUND", `no setting ${JSON.stringify(key)}; settings: ${Object.keys(SETTINGS).join(", ")}`);
  return s;
}

export async function listSettings(store: Store): Promise<Record<string, unknown>> {
  return store.settings.list();
}

/** Sets one setting from its text; admit ek-cert-chain needs a default class (set first, or already set). Audited. */
export async function setSetting(store: Store, key: string, text: string, c: Caller): Promise<Record<string, unknown>> {
  try {
    const value = spec(key).parse(text);
    if (key === "admit" && value === "ek-cert-chain" && !(await store.settings.get<string>("default-class"))) {
      throw bad("admit", "set default-class first: admitted hosts need a hardware class (tpmtrust config set default-class CLASS)");
    }
    await store.transaction(async (tx) => {
      await tx.settings.set(key, value, c.now);
      await tx.audit.append({ actor: c.actor, action: "config.set", subject: key, outcome: "success", details: { value: value as string }, at: c.now });
    });
    return store.settings.list();
  } catch (e) {
    if (isTpmTrustError(e)) await store.audit.append({ actor: c.actor, action: "config.set", subject: key, outcome: "failure", details: { code: e.code, reason: e.message }, at: c.now });
    throw e;
  }
}

export async function unsetSetting(store: Store, key: string, c: Caller): Promise<Record<string, unknown>> {
  spec(key);
  if (key === "default-class" && (await store.settings.get<string>("admit")) === "ek-cert-chain") {
    throw bad("default-class", "admission by EK certificate chain uses it: set admit registered first");
  }
  const removed = await store.transaction(async (tx) => {
    const removed = await tx.settings.remove(key);
    await tx.audit.append({ actor: c.actor, action: "config.unset", subject: key, outcome: removed ? "success" : "failure", details: removed ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
    return removed;
  });
  if (!removed) throw new TpmTrustError("ERR_NOT_FOUND", `${key} is not set`);
  return store.settings.list();
}

/** The admission in force: the service's own flags if it was started with them, else the database's settings. */
export async function admissionOf(store: Store, override?: Admission): Promise<Admission> {
  if (override) return override;
  const mode = (await store.settings.get<AdmitMode>("admit")) ?? "registered";
  return { mode, defaultClass: (await store.settings.get<string>("default-class")) ?? null };
}

/** The principals allowed in an area, or undefined when every admin is. */
export async function areaGroup(store: Store, area: AdminArea): Promise<string[] | undefined> {
  return store.settings.get<string[]>(`admins.${area}`);
}
