import { TpmTrustError } from "../errors.js";

/**
 * The JSON Schema subset policy documents are written in (draft 2020-12 keywords: type, properties,
 * required, additionalProperties: false, patternProperties, items, enum, const, pattern, minimum,
 * maximum, minItems, maxLength). The schema is the validator: one definition serves the CLI, the
 * service (fastify/ajv accept the same documents) and the docs. Strict: no coercion, no stripping.
 */
export interface Schema {
  $id?: string;
  $schema?: string;
  title?: string;
  description?: string;
  type?: "object" | "array" | "string" | "integer" | "boolean";
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: false;
  patternProperties?: Record<string, Schema>;
  items?: Schema;
  enum?: readonly (string | number)[];
  const?: string | number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxLength?: number;
}

const MAX_ERRORS = 10;

// patterns compiled once: a policy of a million digests checks a million strings against one
const compiled = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let r = compiled.get(pattern);
  if (!r) compiled.set(pattern, (r = new RegExp(pattern, "u")));
  return r;
}

/** Validates `value` against `schema`; throws ERR_VALIDATION listing (up to 10) JSON paths and problems. */
export function validate(schema: Schema, value: unknown, what: string): void {
  const errors: string[] = [];
  check(schema, value, "$", errors);
  if (errors.length) throw new TpmTrustError("ERR_VALIDATION", `${what} is not valid: ${errors.join("; ")}`, { errors });
}

/**
 * Validates a versioned policy document: an unsupported `version` is named as such before any other
 * problem, so an operator holding a document from another tpmtrust release is told exactly that.
 */
export function parseDocument<T>(schema: Schema, version: number, what: string, doc: unknown): T {
  if (doc && typeof doc === "object" && "version" in doc && doc.version !== version) {
    throw new TpmTrustError("ERR_VALIDATION", `${what} version ${JSON.stringify(doc.version)} is not supported (expected ${version})`);
  }
  validate(schema, doc, what);
  return doc as T;
}

function typeOf(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function check(s: Schema, v: unknown, path: string, errors: string[]): void {
  if (errors.length >= MAX_ERRORS) return;
  const t = typeOf(v);
  if (s.type && t !== s.type) {
    errors.push(`${path}: expected ${s.type}, got ${t}`);
    return;
  }
  if (s.const !== undefined && v !== s.const) errors.push(`${path}: must be ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(v as string | number)) errors.push(`${path}: must be one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  if (typeof v === "string") {
    if (s.maxLength !== undefined && v.length > s.maxLength) errors.push(`${path}: longer than ${s.maxLength} characters`);
    if (s.pattern && !regex(s.pattern).test(v)) errors.push(`${path}: does not match ${s.pattern}`);
  }
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) errors.push(`${path}: below ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) errors.push(`${path}: above ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errors.push(`${path}: fewer than ${s.minItems} items`);
    if (s.items) for (let i = 0; i < v.length; i++) check(s.items, v[i], `${path}[${i}]`, errors);
  }
  if (t === "object") {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) errors.push(`${path}: missing "${r}"`);
    for (const k of Object.keys(o)) {
      let sub = s.properties && Object.hasOwn(s.properties, k) ? s.properties[k] : undefined;
      if (!sub && s.patternProperties) {
        for (const re in s.patternProperties) {
          if (regex(re).test(k)) {
            sub = s.patternProperties[re];
            break;
          }
        }
      }
      if (sub) check(sub, o[k], `${path}.${k}`, errors);
      else if (s.additionalProperties === false) errors.push(`${path}: unexpected property "${k}"`);
    }
  }
}

/** Shared pieces of the policy schemas. */
export const HEX_DIGEST: Schema = { type: "string", pattern: "^([0-9a-f]{2}){1,128}$" };
export const DIGESTS: Schema = { type: "object", patternProperties: { "^[a-z0-9_]{2,16}$": HEX_DIGEST }, additionalProperties: false };
export const NAME: Schema = { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$" };
