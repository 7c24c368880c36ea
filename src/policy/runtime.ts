import { hash } from "node:crypto";
import { TpmTrustError, type ErrorCode } from "../errors.js";
import { loadImaKey, templateHashMatches, verifyImaSignature, verifyModsig, type ImaEntry, type ImaKey, type ImaList } from "../verify/ima/index.js";
import { NAME, parseDocument, validate, type Schema } from "./schema.js";

/**
 * Runtime policy (kind `runtime`): what the files a Linux host measured with IMA may be. Same
 * semantics as Keylime's runtime policy, so its documents import as they are:
 *  - a file is allowed when its path matches an exclude pattern (a regular expression matched at the
 *    start of the path), when its ima-sig/ima-modsig signature verifies with a trusted IMA key, or when
 *    its digest is one of those listed for its path (several per path);
 *  - an ima-buf entry carrying a key is allowed when its keyring is ignored or its digest is listed for
 *    the keyring; the key is then learned and trusted for later signatures;
 *  - any other ima-buf entry must have its digest listed for its name under `buffers`.
 */
const RUNTIME_VERSION = 1;
const RUNTIME_SCHEMA_ID = "https://tpmtrust.dev/schemas/runtime-1.json";

export interface RuntimePolicy {
  $schema: typeof RUNTIME_SCHEMA_ID;
  kind: "tpmtrust.runtime";
  version: typeof RUNTIME_VERSION;
  name: string;
  /** path → allowed digests (lowercase hex, any algorithm) */
  digests: Record<string, string[]>;
  /** regular expressions; a path matching one at its start is not judged */
  excludes: string[];
  /** file digest algorithms accepted; empty: any */
  hashAlgorithms: string[];
  /** trusted IMA keys: PEM certificates or public keys */
  keys: string[];
  /** keyring name → allowed digests of keys measured into it (ima-buf) */
  keyrings: Record<string, string[]>;
  /** keyrings whose measured keys are neither judged nor learned ("*": all) */
  ignoredKeyrings: string[];
  /** ima-buf name → allowed digests, for buffers that are not keys */
  buffers: Record<string, string[]>;
  /** measurement violations (ToMToU, open writers) pass instead of failing the host */
  ignoreViolations: boolean;
}

const HEX_LIST: Schema = { type: "array", minItems: 1, items: { type: "string", pattern: "^([0-9a-f]{2}){16,64}$" } };
const DIGEST_MAP: Schema = { type: "object", patternProperties: { "^": HEX_LIST } };

const RUNTIME_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: RUNTIME_SCHEMA_ID,
  title: "tpmtrust runtime (IMA) policy",
  type: "object",
  required: ["$schema", "kind", "version", "name", "digests", "excludes", "hashAlgorithms", "keys", "keyrings", "ignoredKeyrings", "buffers", "ignoreViolations"],
  additionalProperties: false,
  properties: {
    $schema: { const: RUNTIME_SCHEMA_ID },
    kind: { const: "tpmtrust.runtime" },
    version: { type: "integer" },
    name: NAME,
    digests: DIGEST_MAP,
    excludes: { type: "array", items: { type: "string", maxLength: 4096 } },
    hashAlgorithms: { type: "array", items: { type: "string", enum: ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sm3"] } },
    keys: { type: "array", items: { type: "string", maxLength: 65536 } },
    keyrings: DIGEST_MAP,
    ignoredKeyrings: { type: "array", items: { type: "string", maxLength: 256 } },
    buffers: DIGEST_MAP,
    ignoreViolations: { type: "boolean" },
  },
};

export function emptyRuntimePolicy(name: string): RuntimePolicy {
  return { $schema: RUNTIME_SCHEMA_ID, kind: "tpmtrust.runtime", version: RUNTIME_VERSION, name, digests: {}, excludes: [], hashAlgorithms: [], keys: [], keyrings: {}, ignoredKeyrings: [], buffers: {}, ignoreViolations: false };
}

/** Exclude patterns as one expression matched at the start of a path (Python's re.match over "(a)|(b)"). */
export function compileExcludes(excludes: readonly string[]): RegExp | undefined {
  if (!excludes.length) return undefined;
  try {
    return new RegExp(`^(?:${excludes.map((e) => `(?:${e})`).join("|")})`);
  } catch (e) {
    throw new TpmTrustError("ERR_VALIDATION", `runtime policy: an exclude pattern is not a regular expression: ${(e as Error).message}`);
  }
}

/**
 * Allowed digests per name, O(1) per lookup: the digest string itself when a name has one (most
 * paths: no set per path, so a policy of 1,000,000 digests loads fast and small), else a set.
 */
export type DigestIndex = Map<string, string | Set<string>>;

/** A runtime policy ready to judge entries: indexes built once per policy version, O(1) per lookup. */
export interface CompiledRuntimePolicy {
  policy: RuntimePolicy;
  digests: DigestIndex;
  keyrings: DigestIndex;
  buffers: DigestIndex;
  exclude?: RegExp;
  keys: ImaKey[];
  algs?: Set<string>;
  ignored: Set<string>;
}

function toIndex(o: Record<string, string[]>): DigestIndex {
  const m: DigestIndex = new Map();
  for (const k of Object.keys(o)) {
    const v = o[k];
    m.set(k, v.length === 1 ? v[0] : new Set(v));
  }
  return m;
}

/** Is `hex` among the digests the index allows for `name`? */
function allowedDigest(m: DigestIndex, name: string, hex: string): boolean {
  const v = m.get(name);
  return v === hex || (typeof v === "object" && v.has(hex));
}

const allowedCount = (m: DigestIndex, name: string) => {
  const v = m.get(name);
  return typeof v === "string" ? 1 : (v?.size ?? 0);
};

export function compileRuntimePolicy(p: RuntimePolicy): CompiledRuntimePolicy {
  return {
    policy: p,
    digests: toIndex(p.digests),
    keyrings: toIndex(p.keyrings),
    buffers: toIndex(p.buffers),
    exclude: compileExcludes(p.excludes),
    keys: p.keys.map((k, i) => {
      try {
        return loadImaKey(k);
      } catch (e) {
        throw new TpmTrustError("ERR_VALIDATION", `runtime policy: keys[${i}] is not a certificate or public key: ${(e as Error).message}`);
      }
    }),
    ...(p.hashAlgorithms.length ? { algs: new Set(p.hashAlgorithms) } : {}),
    ignored: new Set(p.ignoredKeyrings),
  };
}

/** Validates a runtime policy document (strict schema, version, regular expressions, keys) and compiles it. */
export function parseRuntimePolicy(doc: unknown): CompiledRuntimePolicy {
  return compileRuntimePolicy(parseDocument<RuntimePolicy>(RUNTIME_SCHEMA, RUNTIME_VERSION, "runtime policy", doc));
}

/** One entry the policy rejects. */
export interface ImaFailure {
  index: number;
  path: string;
  template: string;
  /** "alg:hex" */
  digest: string;
  code: ErrorCode;
  reason: string;
}

/** What an incremental check carries from one increment to the next. */
export interface RuntimeCheckState {
  /** Keys learned from ima-buf entries of allowed keyrings. */
  learnedKeys: ImaKey[];
  /** When given: the measured bytes of each key learned (what a stored state keeps). */
  learnedBytes?: Buffer[];
}

export interface RuntimeCheckOptions {
  /** Judges the boot_aggregate entry (against quoted PCRs); without it the policy's digests decide when it lists boot_aggregate. */
  bootAggregate?: (e: ImaEntry) => { ok: boolean; reason?: string };
  /** The caller verified every entry's template hash already (verifyImaAgainstPcrs does, on its replay). */
  templateHashesChecked?: boolean;
}

export interface RuntimeCheckResult {
  checked: number;
  failures: ImaFailure[];
  /** Entries passed because an exclude pattern matched, and those whose boot_aggregate was not judged. */
  excluded: number;
  notes: string[];
}

const dstr = (e: ImaEntry) => `${e.digest.alg}:${e.digest.digest.toString("hex")}`;

/** Judges entries in order (keys learned from earlier entries sign later ones); `state` is updated in place. */
export function checkRuntimePolicy(c: CompiledRuntimePolicy, list: Pick<ImaList, "entries" | "templateHashAlg">, state: RuntimeCheckState = { learnedKeys: [] }, o: RuntimeCheckOptions = {}): RuntimeCheckResult {
  const failures: ImaFailure[] = [];
  const notes: string[] = [];
  let excluded = 0;
  const fail = (e: ImaEntry, code: ErrorCode, reason: string) => failures.push({ index: e.index, path: e.path, template: e.template, digest: dstr(e), code, reason });
  const listed = (m: DigestIndex, e: ImaEntry) => m.has(e.path) && allowedDigest(m, e.path, e.digest.digest.toString("hex"));
  const checkTemplates = !o.templateHashesChecked;
  for (const e of list.entries) {
    if (e.pcr !== 10) {
      fail(e, "ERR_IMA_PCR", `measured into PCR ${e.pcr}`);
      continue;
    }
    if (checkTemplates && !templateHashMatches(e, list.templateHashAlg)) {
      fail(e, "ERR_IMA_TEMPLATE_HASH_MISMATCH", `template hash ${e.templateHash.toString("hex")} is not the ${list.templateHashAlg} of the template data`);
      continue;
    }
    if (e.violation) {
      if (!c.policy.ignoreViolations) fail(e, "ERR_IMA_DIGEST_NOT_ALLOWED", "measurement violation (file changed while measured, or open for writing)");
      continue;
    }
    if (e.path === "boot_aggregate" && e.index === 0) {
      if (o.bootAggregate) {
        const r = o.bootAggregate(e);
        if (!r.ok) fail(e, "ERR_IMA_BOOT_AGGREGATE_MISMATCH", r.reason ?? "boot_aggregate does not match");
      } else if (c.digests.has("boot_aggregate")) {
        if (!listed(c.digests, e)) fail(e, "ERR_IMA_DIGEST_NOT_ALLOWED", "boot_aggregate is not among the policy's");
      } else notes.push("boot_aggregate not judged: no quote of PCRs 0-7 and the policy lists none");
      continue;
    }
    if (c.algs && !c.algs.has(e.digest.alg)) {
      fail(e, "ERR_IMA_HASH_ALG_NOT_ALLOWED", `${e.digest.alg} is not among the accepted ${[...c.algs].join(", ")}`);
      continue;
    }
    if (e.buf !== undefined) {
      let key: ImaKey | undefined;
      try {
        key = e.buf.length ? loadImaKey(e.buf) : undefined;
      } catch {
        key = undefined;
      }
      if (key) {
        if (c.ignored.has("*") || c.ignored.has(e.path)) continue;
        if (c.exclude?.test(e.path)) {
          excluded++;
          continue;
        }
        if (!hash(e.digest.alg, e.buf, "buffer").equals(e.digest.digest)) fail(e, "ERR_IMA_KEY_NOT_ALLOWED", "the digest is not the hash of the measured key");
        else if (!listed(c.keyrings, e)) fail(e, "ERR_IMA_KEY_NOT_ALLOWED", c.keyrings.has(e.path) ? `key is not among those allowed in keyring ${e.path}` : `keyring ${e.path} is not in the policy`);
        else {
          state.learnedKeys.push(key);
          state.learnedBytes?.push(e.buf);
        }
        continue;
      }
      if (c.exclude?.test(e.path)) excluded++;
      else if (!listed(c.buffers, e)) fail(e, "ERR_IMA_DIGEST_NOT_ALLOWED", c.buffers.has(e.path) ? "buffer digest is not among those allowed" : `buffer ${e.path} is not in the policy`);
      continue;
    }
    if (c.exclude?.test(e.path)) {
      excluded++;
      continue;
    }
    let sigReason: string | undefined;
    if (e.sig || e.modsig) {
      const keys = state.learnedKeys.length ? [...c.keys, ...state.learnedKeys] : c.keys;
      const r = e.sig ? verifyImaSignature(e.sig, e.digest, keys) : verifyModsig(e.modsig!, e.modsigDigest ?? e.digest, keys);
      if (r.ok) continue;
      sigReason = r.reason;
    }
    if (listed(c.digests, e)) continue;
    const why = c.digests.has(e.path) ? `digest is not among the ${allowedCount(c.digests, e.path)} allowed for this path` : "path is not in the policy";
    if (sigReason) fail(e, "ERR_IMA_SIGNATURE_INVALID", `${sigReason}; ${why}`);
    else fail(e, "ERR_IMA_DIGEST_NOT_ALLOWED", why);
  }
  return { checked: list.entries.length, failures, excluded, notes };
}

/** Learns a policy from a reference host's list: every measured path with its digest; keys measured into keyrings allowed as they are. */
export function learnRuntimePolicy(name: string, list: ImaList, excludes: string[] = []): RuntimePolicy {
  validate(NAME, name, "runtime policy name");
  const p = emptyRuntimePolicy(name);
  p.excludes = excludes;
  const exclude = compileExcludes(excludes);
  const add = (m: Record<string, string[]>, k: string, v: string) => {
    const l = (m[k] ??= []);
    if (!l.includes(v)) l.push(v);
  };
  for (const e of list.entries) {
    if (e.violation || (e.index === 0 && e.path === "boot_aggregate") || exclude?.test(e.path)) continue;
    const hex = e.digest.digest.toString("hex");
    if (e.buf !== undefined) {
      let isKey = false;
      try {
        isKey = e.buf.length > 0 && !!loadImaKey(e.buf);
      } catch {
        isKey = false;
      }
      add(isKey ? p.keyrings : p.buffers, e.path, hex);
    } else add(p.digests, e.path, hex);
  }
  return p;
}
