/**
 * The initial device twin an enrollment gives a device, as DPS takes it:
 * `{tags?: {…}, properties?: {desired?: {…}}}`, at most 32 KiB of JSON.
 */
import { TpmTrustError } from "../errors.js";

export interface Twin {
  tags?: Record<string, unknown>;
  properties?: { desired?: Record<string, unknown> };
}

const MAX_TWIN_BYTES = 32 * 1024;

export const TWIN_SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    tags: { type: "object" },
    properties: { type: "object", additionalProperties: false, properties: { desired: { type: "object" } } },
  },
} as const;

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

export function checkTwin(v: unknown): Twin {
  const bad = (m: string) => new TpmTrustError("ERR_VALIDATION", `initialTwin ${m}`);
  if (!isObject(v)) throw bad("must be an object");
  for (const k of Object.keys(v)) if (k !== "tags" && k !== "properties") throw bad(`has an unknown field ${k} (only tags and properties)`);
  if (v.tags !== undefined && !isObject(v.tags)) throw bad("tags must be an object");
  if (v.properties !== undefined) {
    if (!isObject(v.properties)) throw bad("properties must be an object");
    for (const k of Object.keys(v.properties)) if (k !== "desired") throw bad(`properties has an unknown field ${k} (only desired)`);
    if (v.properties.desired !== undefined && !isObject(v.properties.desired)) throw bad("properties.desired must be an object");
  }
  if (Buffer.byteLength(JSON.stringify(v)) > MAX_TWIN_BYTES) throw bad(`exceeds ${MAX_TWIN_BYTES} bytes`);
  return v as Twin;
}
