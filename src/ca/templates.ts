/**
 * Certificate templates: what a certificate looks like (validity, key usage, EKU), what a request
 * may ask for (subject and SAN rules, key types), and AD CS key attestation settings:
 *
 * - mode `none`: attestation is ignored; `required-if-capable`: a request without attestation is
 *   issued without attestation policies, attestation that is present must be valid; `required`:
 *   no valid attestation, no certificate.
 * - trust models (any combination): `ek-key` (EKpub allow-listed, 1.3.6.1.4.1.311.21.30),
 *   `ek-cert` (EK certificate chains to EKROOT/EKCA, .31), `user-credentials` (the enrolling
 *   admin-authenticated user vouches for the TPM, .32).
 * - `includeIssuancePolicies` (default true): the certificate carries the policy OID of every
 *   trust model that passed.
 */
import { TpmTrustError } from "../errors.js";
import type { Store } from "../store/index.js";
import { TRUST_MODELS, type TrustModel } from "./oids.js";

export type AttestationMode = "none" | "required-if-capable" | "required";
export const ATTESTATION_MODES: readonly AttestationMode[] = ["none", "required-if-capable", "required"];
export const KEY_USAGES = ["digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement"] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];
export const KEY_TYPES = ["rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"] as const;
export type KeyType = (typeof KEY_TYPES)[number];
export const SAN_TYPES = ["dns", "ip", "email", "uri"] as const;
export type SanType = (typeof SAN_TYPES)[number];
/** Names for common extended key usages; any dotted OID is accepted too. */
export const EKU_NAMES: Record<string, string> = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  codeSigning: "1.3.6.1.5.5.7.3.3",
  emailProtection: "1.3.6.1.5.5.7.3.4",
  smartcardLogon: "1.3.6.1.4.1.311.20.2.2",
};
export const TEMPLATE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

export interface CertTemplate {
  name: string;
  /** days; capped at the issuing CA's notAfter */
  validityDays: number;
  keyUsage: KeyUsage[];
  /** names from EKU_NAMES or dotted OIDs */
  extendedKeyUsage: string[];
  subject: {
    /** a regular expression the whole subject (RFC 4514 string, e.g. "CN=host1, O=Example") must match */
    pattern?: string;
    /** the subject must have a CN (default true) */
    requireCommonName: boolean;
  };
  subjectAltNames: {
    /** SAN types the CSR may request (default none) */
    allowed: SanType[];
    /** a regular expression every requested SAN value must match */
    pattern?: string;
  };
  keyTypes: KeyType[];
  keyAttestation: {
    mode: AttestationMode;
    trustModels: TrustModel[];
    includeIssuancePolicies: boolean;
  };
}

/** JSON schema of a template document (the API validates against it; decodeTemplate fills defaults). */
export const TEMPLATE_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["name"],
  properties: {
    name: { type: "string", pattern: TEMPLATE_NAME_PATTERN },
    validityDays: { type: "integer", minimum: 1, maximum: 3650 },
    keyUsage: { type: "array", maxItems: KEY_USAGES.length, uniqueItems: true, items: { enum: [...KEY_USAGES] } },
    extendedKeyUsage: { type: "array", maxItems: 16, uniqueItems: true, items: { type: "string", pattern: `^(${Object.keys(EKU_NAMES).join("|")}|[0-2](\\.[0-9]+)+)$` } },
    subject: {
      type: "object",
      additionalProperties: false,
      properties: { pattern: { type: "string", minLength: 1, maxLength: 512 }, requireCommonName: { type: "boolean" } },
    },
    subjectAltNames: {
      type: "object",
      additionalProperties: false,
      properties: {
        allowed: { type: "array", maxItems: SAN_TYPES.length, uniqueItems: true, items: { enum: [...SAN_TYPES] } },
        pattern: { type: "string", minLength: 1, maxLength: 512 },
      },
    },
    keyTypes: { type: "array", minItems: 1, maxItems: KEY_TYPES.length, uniqueItems: true, items: { enum: [...KEY_TYPES] } },
    keyAttestation: {
      type: "object",
      additionalProperties: false,
      properties: {
        mode: { enum: [...ATTESTATION_MODES] },
        trustModels: { type: "array", maxItems: TRUST_MODELS.length, uniqueItems: true, items: { enum: [...TRUST_MODELS] } },
        includeIssuancePolicies: { type: "boolean" },
      },
    },
  },
} as const;

function invalid(field: string, why: string): TpmTrustError {
  return new TpmTrustError("ERR_VALIDATION", `template ${field} ${why}`, { field });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function only(o: Record<string, unknown>, field: string, keys: string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw invalid(`${field}${field ? "." : ""}${k}`, "is not a template field");
}

function list<T extends string>(v: unknown, field: string, allowed: readonly T[] | ((s: string) => boolean), o: { min?: number } = {}): T[] {
  if (!Array.isArray(v)) throw invalid(field, "must be an array");
  const ok = typeof allowed === "function" ? allowed : (s: string) => (allowed as readonly string[]).includes(s);
  for (const x of v) if (typeof x !== "string" || !ok(x)) throw invalid(field, `holds ${JSON.stringify(x)}, not one of ${typeof allowed === "function" ? "the allowed values" : allowed.join(", ")}`);
  if (new Set(v).size !== v.length) throw invalid(field, "has duplicates");
  if (v.length < (o.min ?? 0)) throw invalid(field, `needs at least ${o.min} entries`);
  return v as T[];
}

function regex(v: unknown, field: string): string {
  if (typeof v !== "string" || v.length === 0 || v.length > 512) throw invalid(field, "must be a regular expression of 1–512 characters");
  try {
    new RegExp(v, "u");
  } catch (e) {
    throw invalid(field, `is not a regular expression: ${(e as Error).message}`);
  }
  return v;
}

const isOid = (s: string) => /^[0-2](\.(0|[1-9][0-9]*))+$/.test(s);

/** Validates a template document and fills its defaults; ERR_VALIDATION naming the field otherwise. */
export function decodeTemplate(json: unknown): CertTemplate {
  if (!isObj(json)) throw invalid("", "must be a JSON object");
  only(json, "", ["name", "validityDays", "keyUsage", "extendedKeyUsage", "subject", "subjectAltNames", "keyTypes", "keyAttestation"]);
  if (typeof json.name !== "string" || !new RegExp(TEMPLATE_NAME_PATTERN).test(json.name)) throw invalid("name", `must match ${TEMPLATE_NAME_PATTERN}`);
  const validityDays = json.validityDays ?? 365;
  if (typeof validityDays !== "number" || !Number.isInteger(validityDays) || validityDays < 1 || validityDays > 3650) throw invalid("validityDays", "must be an integer from 1 to 3650");
  const subject = json.subject ?? {};
  if (!isObj(subject)) throw invalid("subject", "must be an object");
  only(subject, "subject", ["pattern", "requireCommonName"]);
  if (subject.requireCommonName !== undefined && typeof subject.requireCommonName !== "boolean") throw invalid("subject.requireCommonName", "must be true or false");
  const san = json.subjectAltNames ?? {};
  if (!isObj(san)) throw invalid("subjectAltNames", "must be an object");
  only(san, "subjectAltNames", ["allowed", "pattern"]);
  const ka = json.keyAttestation ?? {};
  if (!isObj(ka)) throw invalid("keyAttestation", "must be an object");
  only(ka, "keyAttestation", ["mode", "trustModels", "includeIssuancePolicies"]);
  const mode = ka.mode ?? "none";
  if (!ATTESTATION_MODES.includes(mode as AttestationMode)) throw invalid("keyAttestation.mode", `must be one of ${ATTESTATION_MODES.join(", ")}`);
  const trustModels = list<TrustModel>(ka.trustModels ?? (mode === "none" ? [] : ["ek-cert"]), "keyAttestation.trustModels", TRUST_MODELS);
  if (mode !== "none" && trustModels.length === 0) throw invalid("keyAttestation.trustModels", `needs at least one trust model when the mode is ${mode}`);
  if (ka.includeIssuancePolicies !== undefined && typeof ka.includeIssuancePolicies !== "boolean") throw invalid("keyAttestation.includeIssuancePolicies", "must be true or false");
  return {
    name: json.name,
    validityDays,
    keyUsage: list<KeyUsage>(json.keyUsage ?? ["digitalSignature"], "keyUsage", KEY_USAGES),
    extendedKeyUsage: list(json.extendedKeyUsage ?? ["clientAuth"], "extendedKeyUsage", (s) => s in EKU_NAMES || isOid(s)),
    subject: { ...(subject.pattern !== undefined ? { pattern: regex(subject.pattern, "subject.pattern") } : {}), requireCommonName: (subject.requireCommonName as boolean | undefined) ?? true },
    subjectAltNames: { allowed: list<SanType>(san.allowed ?? [], "subjectAltNames.allowed", SAN_TYPES), ...(san.pattern !== undefined ? { pattern: regex(san.pattern, "subjectAltNames.pattern") } : {}) },
    keyTypes: list<KeyType>(json.keyTypes ?? ["rsa-2048", "ecdsa-p256"], "keyTypes", KEY_TYPES, { min: 1 }),
    keyAttestation: { mode: mode as AttestationMode, trustModels, includeIssuancePolicies: (ka.includeIssuancePolicies as boolean | undefined) ?? true },
  };
}

export interface TemplateView extends CertTemplate {
  createdAt: number;
  updatedAt: number;
}

/** Creates or replaces a template. Audited as ca.template.put. */
export async function putTemplate(store: Store, json: unknown, c: { actor: string; now: number }): Promise<TemplateView> {
  const t = decodeTemplate(json);
  const r = await store.ca.putTemplate(t.name, t, c.now);
  await store.audit.append({ actor: c.actor, action: "ca.template.put", subject: t.name, outcome: "success", details: t, at: c.now });
  return { ...t, createdAt: r.createdAt, updatedAt: r.updatedAt };
}

export async function getTemplate(store: Store, name: string): Promise<TemplateView> {
  const r = await store.ca.getTemplate<unknown>(name);
  if (!r) throw new TpmTrustError("ERR_NOT_FOUND", `no certificate template named ${JSON.stringify(name)}`);
  return { ...decodeTemplate(r.document), createdAt: r.createdAt, updatedAt: r.updatedAt };
}

export async function listTemplates(store: Store): Promise<TemplateView[]> {
  return (await store.ca.listTemplates<unknown>()).map((r) => ({ ...decodeTemplate(r.document), createdAt: r.createdAt, updatedAt: r.updatedAt }));
}

export async function removeTemplate(store: Store, name: string, c: { actor: string; now: number }): Promise<void> {
  const removed = await store.ca.removeTemplate(name);
  await store.audit.append({ actor: c.actor, action: "ca.template.remove", subject: name, outcome: removed ? "success" : "failure", details: removed ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
  if (!removed) throw new TpmTrustError("ERR_NOT_FOUND", `no certificate template named ${JSON.stringify(name)}`);
}
