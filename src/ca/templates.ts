/**
 * Certificate templates: what a certificate looks like (validity, key usage, EKU), what a request
 * may ask for (subject and SAN rules, key types), and AD CS key attestation settings:
 *
 * - mode `none`: attestation is ignored; `required-if-capable`: attestation is checked when the
 *   request carries some, and a request without it or whose check fails is issued without
 *   attestation policies (AD CS); `required`: no valid attestation, no certificate.
 * - trust models (any combination): `ek-key` (EKpub allow-listed, 1.3.6.1.4.1.311.21.30),
 *   `ek-cert` (EK certificate chains to EKROOT/EKCA, .31), `user-credentials` (an enroller-token
 *   requester the template names vouches for the TPM, .32).
 * - `includeIssuancePolicies` (default true): the certificate carries the policy OID of every
 *   trust model that passed.
 *
 * Who may enroll (`requesters`) and where the certificate's names come from (`subjectFrom`: `host`,
 * the attested host's registered name, as AD CS builds the subject from the directory; or
 * `request`, the CSR's names, for an attested request only the host's own) are part of the template.
 * Subject and SAN patterns always match the whole value.
 */
import { TpmTrustError } from "../errors.js";
import type { Store } from "../store/index.js";
import { TRUST_MODELS, type TrustModel } from "./oids.js";

export type AttestationMode = "none" | "required-if-capable" | "required";
export const ATTESTATION_MODES: readonly AttestationMode[] = ["none", "required-if-capable", "required"];
const KEY_USAGES = ["digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement"] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];
const KEY_TYPES = ["rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"] as const;
export type KeyType = (typeof KEY_TYPES)[number];
const SAN_TYPES = ["dns", "ip", "email", "uri"] as const;
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
export const SUBJECT_SOURCES = ["host", "request"] as const;
export type SubjectSource = (typeof SUBJECT_SOURCES)[number];
/** Identities of enroller tokens, host classes and tags a template names. */
export const REQUESTER_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$";

export interface Requesters {
  /** attested registered hosts may enroll (default true) … */
  hosts: boolean;
  /** … restricted to these hardware classes or these tags when either list is non-empty */
  hostClasses: string[];
  hostTags: string[];
  /** identities of the enroller tokens that may enroll (default none) */
  enrollers: string[];
  /** admin tokens may enroll (default true) */
  admins: boolean;
  /** requests with neither a token nor a verified attestation (default false) */
  anonymous: boolean;
}

export interface CertTemplate {
  name: string;
  /** days; capped at the issuing CA's notAfter */
  validityDays: number;
  keyUsage: KeyUsage[];
  /** names from EKU_NAMES or dotted OIDs */
  extendedKeyUsage: string[];
  /** where the certificate's subject and SANs come from (default: host when the mode is required, else request) */
  subjectFrom: SubjectSource;
  requesters: Requesters;
  subject: {
    /** a regular expression the whole subject (canonical RFC 4514 text, e.g. "CN=host1, O=Example") must match; always anchored */
    pattern?: string;
    /** the subject must have a CN (default true) */
    requireCommonName: boolean;
  };
  subjectAltNames: {
    /** SAN types the CSR may request (default none) */
    allowed: SanType[];
    /** a regular expression every SAN value must match as a whole */
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
    subjectFrom: { enum: [...SUBJECT_SOURCES] },
    requesters: {
      type: "object",
      additionalProperties: false,
      properties: {
        hosts: { type: "boolean" },
        hostClasses: { type: "array", maxItems: 64, uniqueItems: true, items: { type: "string", pattern: REQUESTER_NAME_PATTERN } },
        hostTags: { type: "array", maxItems: 64, uniqueItems: true, items: { type: "string", pattern: REQUESTER_NAME_PATTERN } },
        enrollers: { type: "array", maxItems: 256, uniqueItems: true, items: { type: "string", pattern: REQUESTER_NAME_PATTERN } },
        admins: { type: "boolean" },
        anonymous: { type: "boolean" },
      },
    },
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
    // compiled alone first: a pattern with unbalanced groups (".*)|(x") could otherwise escape the anchors
    new RegExp(v, "u");
  } catch (e) {
    throw invalid(field, `is not a regular expression: ${(e as Error).message}`);
  }
  return v;
}

/** A template pattern as a whole-value match: `^(?:…)$` whatever the operator wrote. */
export function wholeMatch(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, "u");
}

const isName = (s: string) => new RegExp(REQUESTER_NAME_PATTERN).test(s);

function flag(o: Record<string, unknown>, key: string, field: string, dflt: boolean): boolean {
  const v = o[key] ?? dflt;
  if (typeof v !== "boolean") throw invalid(field, "must be true or false");
  return v;
}

const isOid = (s: string) => /^[0-2](\.(0|[1-9][0-9]*))+$/.test(s);

/** Validates a template document and fills its defaults; ERR_VALIDATION naming the field otherwise. */
export function decodeTemplate(json: unknown): CertTemplate {
  if (!isObj(json)) throw invalid("", "must be a JSON object");
  only(json, "", ["name", "validityDays", "keyUsage", "extendedKeyUsage", "subjectFrom", "requesters", "subject", "subjectAltNames", "keyTypes", "keyAttestation"]);
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
  const subjectFrom = json.subjectFrom ?? (mode === "required" ? "host" : "request");
  if (!SUBJECT_SOURCES.includes(subjectFrom as SubjectSource)) throw invalid("subjectFrom", `must be one of ${SUBJECT_SOURCES.join(", ")}`);
  const rq = json.requesters ?? {};
  if (!isObj(rq)) throw invalid("requesters", "must be an object");
  only(rq, "requesters", ["hosts", "hostClasses", "hostTags", "enrollers", "admins", "anonymous"]);
  const requesters: Requesters = {
    hosts: flag(rq, "hosts", "requesters.hosts", true),
    hostClasses: list(rq.hostClasses ?? [], "requesters.hostClasses", isName),
    hostTags: list(rq.hostTags ?? [], "requesters.hostTags", isName),
    enrollers: list(rq.enrollers ?? [], "requesters.enrollers", isName),
    admins: flag(rq, "admins", "requesters.admins", true),
    anonymous: flag(rq, "anonymous", "requesters.anonymous", false),
  };
  return {
    name: json.name,
    validityDays,
    keyUsage: list<KeyUsage>(json.keyUsage ?? ["digitalSignature"], "keyUsage", KEY_USAGES),
    extendedKeyUsage: list(json.extendedKeyUsage ?? ["clientAuth"], "extendedKeyUsage", (s) => s in EKU_NAMES || isOid(s)),
    subjectFrom: subjectFrom as SubjectSource,
    requesters,
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
  const r = await store.transaction(async (tx) => {
    const r = await tx.ca.putTemplate(t.name, t, c.now);
    await tx.audit.append({ actor: c.actor, action: "ca.template.put", subject: t.name, outcome: "success", details: t, at: c.now });
    return r;
  });
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
  const removed = await store.transaction(async (tx) => {
    const removed = await tx.ca.removeTemplate(name);
    await tx.audit.append({ actor: c.actor, action: "ca.template.remove", subject: name, outcome: removed ? "success" : "failure", details: removed ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
    return removed;
  });
  if (!removed) throw new TpmTrustError("ERR_NOT_FOUND", `no certificate template named ${JSON.stringify(name)}`);
}
