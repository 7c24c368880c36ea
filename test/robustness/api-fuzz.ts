/**
 * Fuzzing the HTTP API: every operation of the server's own OpenAPI document gets bodies, path
 * parameters and query strings generated from its JSON schemas (near-valid, so they reach the
 * services), mutated (one field wrong), or arbitrary JSON; base64 fields carry random bytes or
 * mutated real TPM structures and certificates. Shared by the CI suite and `npm run fuzz`.
 *
 * The contract per answer: never 5xx; every error is problem+json whose `code` is a known error
 * code and whose `status` is the HTTP status (the DPS device API answers in DPS's own error shape).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { ERROR_CODES } from "../../src/errors.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { codeIntegrityPolicy } from "../../src/policy/code-integrity.js";
import { secureBootPolicy } from "../../src/policy/secure-boot.js";
import { learnSoftware } from "../../src/policy/software.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { FIXTURES, mutatedBytes, mutatedJson } from "./parsers.js";

type Schema = Record<string, any>;

export interface Operation {
  method: string;
  /** OpenAPI path, e.g. /v1/hosts/{name} */
  path: string;
  body?: Schema;
  params: { name: string; in: "path" | "query"; required: boolean; schema: Schema }[];
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export function operationsOf(openapi: { paths: Record<string, Record<string, any>> }): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(openapi.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      ops.push({
        method: method.toUpperCase(),
        path,
        body: op.requestBody?.content?.["application/json"]?.schema,
        params: (op.parameters ?? []).filter((p: any) => p.in === "path" || p.in === "query"),
      });
    }
  }
  return ops.sort((a, b) => `${a.path} ${a.method}`.localeCompare(`${b.path} ${b.method}`));
}

/** Real structures for base64 fields: mutations of these get past the first length checks. */
const SEEDS = [
  ["quotes", "swtpm-pcr16-quote.bin"],
  ["quotes", "swtpm-pcr16-sig.bin"],
  ["ek-certs", "infineon_rsa_ek.der"],
  ["ek-certs", "infineon_rsa_ek.expected_tpm2b_public.bin"],
  ["ek-certs", "infineon_ecc_ek.expected_tpm2b_public.bin"],
  ["eventlogs", "four-banks-incl-sha512.bin"],
].map((p) => readFileSync(join(FIXTURES, ...p)));
const base64 = fc.oneof(mutatedBytes(SEEDS), fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b))).map((b) => b.toString("base64"));

/** Real policy documents of every kind, as they are or with one node changed. */
const POLICIES = (() => {
  const log = parseEventLog(SEEDS[5]);
  return [learnBaseline("b", [log], [0, 1, 2, 3, 4, 5, 6, 7]), learnSoftware("s", [log]), codeIntegrityPolicy("c", "ab".repeat(32)), secureBootPolicy("sb")].map((d) => JSON.parse(JSON.stringify(d)));
})();
const policyDocument = fc.oneof(fc.constantFrom(...POLICIES), mutatedJson(POLICIES));

/** Any field that names a URL is pointed at a closed loopback port: fuzzing sends nothing off this machine. */
const LOOPBACK_URLS = fc.constantFrom("http://127.0.0.1:9/hook", "https://127.0.0.1:9/x", "http://[::1]:9/", "ftp://127.0.0.1/", "not a url");

/** Fields holding binary structures that the schema types only as strings. */
const BINARY_FIELD = /csr|certificate|public|attest|signature|blob|secret|eventlog|ciphertext|plaintext|certinfo|pubarea|sig$/i;

/** The pattern with its (?=…) and (?!…) groups removed (balanced parentheses). */
function withoutLookaheads(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.startsWith("(?!", i) || pattern.startsWith("(?=", i)) {
      let depth = 0;
      for (; i < pattern.length; i++) {
        if (pattern[i] === "\\") i++;
        else if (pattern[i] === "(") depth++;
        else if (pattern[i] === ")" && --depth === 0) break;
      }
      continue;
    }
    out += pattern[i];
  }
  return out;
}

function stringFor(s: Schema, key: string): fc.Arbitrary<string> {
  if (/url|webhook|endpoint/i.test(key)) return LOOPBACK_URLS;
  if (s.format === "uuid") return fc.uuid();
  if (s.format === "date-time") return fc.date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true }).map((d) => d.toISOString());
  if (typeof s.pattern === "string") {
    if (s.pattern.includes("A-Za-z0-9+/")) return base64;
    const full = new RegExp(s.pattern);
    const max = Math.min(s.maxLength ?? 200, 200);
    try {
      // fast-check generates from the pattern without its lookaheads; the full pattern filters
      return fc
        .stringMatching(new RegExp(withoutLookaheads(s.pattern)))
        .filter((x) => full.test(x) && x.length <= max && x.length >= (s.minLength ?? 0));
    } catch {
      /* a pattern fast-check cannot generate from: plain strings */
    }
  }
  if (BINARY_FIELD.test(key)) return base64;
  return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 64, 64) });
}

/** A value that (mostly) satisfies the schema. */
export function fromSchema(s: Schema | undefined, key = "", depth = 0): fc.Arbitrary<unknown> {
  if (!s || depth > 6) return fc.jsonValue({ maxDepth: 2 });
  if (Array.isArray(s.enum)) return fc.constantFrom(...s.enum);
  if (s.const !== undefined) return fc.constant(s.const);
  if (Array.isArray(s.oneOf ?? s.anyOf)) return fc.oneof(...(s.oneOf ?? s.anyOf).map((x: Schema) => fromSchema(x, key, depth + 1)));
  const type = Array.isArray(s.type) ? s.type.find((t: string) => t !== "null") : s.type;
  switch (type) {
    case "string":
      return stringFor(s, key);
    case "integer":
      return fc.integer({ min: s.minimum ?? -1_000_000, max: s.maximum ?? 1_000_000 });
    case "number":
      return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
    case "boolean":
      return fc.boolean();
    case "array":
      return fc.array(fromSchema(s.items, key, depth + 1), { minLength: Math.min(s.minItems ?? 0, 4), maxLength: Math.min(s.maxItems ?? 4, 4) });
    case "object": {
      if (key === "document") return policyDocument;
      const props: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) props[k] = fromSchema(v, k, depth + 1);
      const patterned = Object.entries((s.patternProperties ?? {}) as Record<string, Schema>);
      if (patterned.length) {
        const [pattern, v] = patterned[0];
        return fc.dictionary(stringFor({ pattern }, ""), fromSchema(v, key, depth + 1), { maxKeys: 6 });
      }
      if (Object.keys(props).length === 0) return s.additionalProperties === false ? fc.constant({}) : fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
      return fc.record(props, { requiredKeys: (s.required ?? []).filter((k: string) => k in props) });
    }
    default:
      return fc.jsonValue({ maxDepth: 3 });
  }
}

export interface Credentials {
  admin: string;
  auditor: string;
}

/** Requests for one operation: schema-shaped, one field mutated, arbitrary JSON, or a malformed transport. */
export function requestsFor(base: string, op: Operation, creds: Credentials): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.params.filter((p) => p.in === "path");
  const queryParams = op.params.filter((p) => p.in === "query");
  const params = fc.record(Object.fromEntries(pathParams.map((p) => [p.name, fc.oneof({ arbitrary: fromSchema(p.schema, p.name), weight: 4 }, { arbitrary: fc.string({ maxLength: 40 }), weight: 1 })])));
  const query = fc.record(Object.fromEntries(queryParams.map((p) => [p.name, fc.oneof({ arbitrary: fromSchema(p.schema, p.name), weight: 8 }, { arbitrary: fc.string({ maxLength: 20 }), weight: 1 })])), { requiredKeys: [] });
  const shaped = fromSchema(op.body);
  const body = op.body
    ? fc.oneof(
        { arbitrary: shaped.map((v) => JSON.stringify(v)), weight: 5 },
        { arbitrary: shaped.chain((v) => mutatedJson([v])).map((v) => JSON.stringify(v) ?? "null"), weight: 3 },
        { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), weight: 1 },
        { arbitrary: fc.string({ maxLength: 64 }), weight: 1 },
      )
    : fc.constant(undefined);
  const auth = fc.constantFrom<[string, string | undefined]>(["admin", creds.admin], ["admin", creds.admin], ["admin", creds.admin], ["auditor", creds.auditor], ["none", undefined], ["bogus", "tpmtrust_bogus"]);
  const contentType = fc.oneof({ arbitrary: fc.constant("application/json"), weight: 8 }, { arbitrary: fc.constantFrom("text/plain", "application/x-www-form-urlencoded"), weight: 1 });
  return fc.tuple(params, query, body, auth, contentType).map(([p, q, b, [, token], ct]) => {
    let path = op.path;
    for (const [k, v] of Object.entries(p)) path = path.replace(`{${k}}`, encodeURIComponent(String(v)));
    const qs = new URLSearchParams(Object.entries(q).map(([k, v]) => [k, String(v)])).toString();
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (b !== undefined) headers["content-type"] = ct;
    return { method: op.method, url: `${base}${path}${qs ? `?${qs}` : ""}`, headers, ...(b !== undefined ? { body: b } : {}) };
  });
}

export interface Answer {
  status: number;
  contentType: string;
  body: string;
}

export async function send(r: FuzzRequest): Promise<Answer> {
  const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body, redirect: "manual" });
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", body: await res.text() };
}

/** What is wrong with an answer, or undefined when it keeps the contract. */
export function contractViolation(op: Operation, a: Answer): string | undefined {
  if (a.status >= 500) return `HTTP ${a.status}: ${a.body.slice(0, 300)}`;
  if (a.status < 400) return undefined;
  if (a.contentType.startsWith("application/problem+json")) {
    let p: { code?: string; status?: number; detail?: unknown };
    try {
      p = JSON.parse(a.body);
    } catch {
      return `problem+json that is not JSON: ${a.body.slice(0, 200)}`;
    }
    if (typeof p.code !== "string" || !(p.code in ERROR_CODES)) return `unknown problem code ${JSON.stringify(p.code)}`;
    if (p.status !== a.status) return `problem status ${p.status} differs from HTTP ${a.status}`;
    if (typeof p.detail !== "string" || /\n\s+at /.test(p.detail)) return `problem detail missing or with a stack trace: ${String(p.detail).slice(0, 200)}`;
    return undefined;
  }
  if (!op.path.startsWith("/v1") && a.contentType.startsWith("application/json")) {
    // the DPS device registration API: {errorCode, trackingId, message}
    const d = JSON.parse(a.body);
    return typeof d.errorCode === "number" && typeof d.trackingId === "string" && typeof d.message === "string" ? undefined : `DPS error without errorCode/trackingId/message: ${a.body.slice(0, 200)}`;
  }
  return `HTTP ${a.status} with content-type ${a.contentType}: ${a.body.slice(0, 200)}`;
}
