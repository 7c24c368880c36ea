import { toPem } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import { compileExcludes, emptyRuntimePolicy, type RuntimePolicy } from "./runtime.js";
import { NAME, validate } from "./schema.js";

/**
 * Keylime runtime policies brought over as they are: the current JSON format (meta.version 1: digests,
 * excludes, keyrings, ima.ignored_keyrings, ima-buf, verification-keys), the legacy JSON allowlist
 * ({"hashes": …}) and the legacy flat allowlist ("DIGEST  PATH" lines, "%keyring:NAME" for keyrings)
 * with its exclude list (one regular expression a line, "#" comments).
 */
const KEYLIME_POLICY_VERSION = 1;

const HEX = /^([0-9a-f]{2}){16,64}$/;

function digestMap(v: unknown, where: string): Record<string, string[]> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new TpmTrustError("ERR_VALIDATION", `Keylime policy: ${where} is not an object of digest lists`);
  const out: Record<string, string[]> = {};
  for (const [k, list] of Object.entries(v as Record<string, unknown>)) {
    if (!Array.isArray(list) || !list.length) throw new TpmTrustError("ERR_VALIDATION", `Keylime policy: ${where}["${k}"] is not a non-empty list`);
    out[k] = list.map((d) => {
      // legacy allowlists may prefix an algorithm ("sha256:…"); Keylime compares the hex
      const hex = typeof d === "string" ? d.replace(/^[a-z0-9_]+:/, "").toLowerCase() : "";
      if (!HEX.test(hex)) throw new TpmTrustError("ERR_VALIDATION", `Keylime policy: ${where}["${k}"] holds ${JSON.stringify(d)}, not a hex digest`);
      return hex;
    });
  }
  return out;
}

function stringList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new TpmTrustError("ERR_VALIDATION", `Keylime policy: ${where} is not a list of strings`);
  return v as string[];
}

/** "verification-keys": a JSON string {"pubkeys": [base64 DER SubjectPublicKeyInfo…], "keyids": […]}. */
function verificationKeys(v: unknown): string[] {
  if (v === undefined || v === null || v === "") return [];
  if (typeof v !== "string") throw new TpmTrustError("ERR_VALIDATION", "Keylime policy: verification-keys is not a string");
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    throw new TpmTrustError("ERR_VALIDATION", "Keylime policy: verification-keys is not JSON");
  }
  const keys = (parsed as { pubkeys?: unknown }).pubkeys;
  return stringList(keys, "verification-keys.pubkeys").map((b64) => toPem("PUBLIC KEY", Buffer.from(b64, "base64")));
}

/** Converts a Keylime runtime policy (current format) or legacy JSON allowlist to a tpmtrust runtime policy. */
export function importKeylimePolicy(doc: unknown, name: string, excludeList?: string): RuntimePolicy {
  validate(NAME, name, "runtime policy name");
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new TpmTrustError("ERR_VALIDATION", "Keylime policy: not a JSON object");
  const d = doc as Record<string, unknown>;
  if ("payload" in d) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", "Keylime policy is a DSSE envelope: verify and unwrap it with Keylime's tools, then import the payload");
  const p = emptyRuntimePolicy(name);
  const meta = d.meta as { version?: unknown } | undefined;
  if ("hashes" in d) {
    p.digests = digestMap(d.hashes, "hashes");
  } else {
    if (!meta || typeof meta !== "object") throw new TpmTrustError("ERR_VALIDATION", "Keylime policy: no meta (not a Keylime runtime policy)");
    if (meta.version !== KEYLIME_POLICY_VERSION) throw new TpmTrustError("ERR_VALIDATION", `Keylime policy format version ${JSON.stringify(meta.version)} is not supported (expected ${KEYLIME_POLICY_VERSION})`);
    p.digests = digestMap(d.digests, "digests");
  }
  p.excludes = stringList(d.excludes ?? d.exclude, "excludes");
  p.keyrings = digestMap(d.keyrings, "keyrings");
  p.buffers = digestMap(d["ima-buf"], "ima-buf");
  const ima = (d.ima ?? {}) as Record<string, unknown>;
  p.ignoredKeyrings = stringList(ima.ignored_keyrings, "ima.ignored_keyrings");
  if (ima.dm_policy !== undefined && ima.dm_policy !== null) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", "Keylime policy: device-mapper policies (ima.dm_policy) are not supported");
  p.keys = verificationKeys(d["verification-keys"]);
  if (excludeList !== undefined) p.excludes.push(...parseExcludeList(excludeList));
  compileExcludes(p.excludes);
  return p;
}

/** Keylime's legacy flat allowlist: "DIGEST  PATH" per line; "%keyring:NAME" paths list keys of a keyring. */
function importKeylimeAllowlist(text: string, name: string, excludeList?: string): RuntimePolicy {
  validate(NAME, name, "runtime policy name");
  const p = emptyRuntimePolicy(name);
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const m = /^(\S+)\s+(.+)$/.exec(line);
    if (!m) throw new TpmTrustError("ERR_VALIDATION", `allowlist line ${i + 1} is not "DIGEST PATH"`, { line: i + 1 });
    const hex = m[1].replace(/^[a-z0-9_]+:/, "").toLowerCase();
    if (!HEX.test(hex)) throw new TpmTrustError("ERR_VALIDATION", `allowlist line ${i + 1}: ${m[1]} is not a hex digest`, { line: i + 1 });
    const keyring = m[2].startsWith("%keyring:");
    const target = keyring ? p.keyrings : p.digests;
    const key = keyring ? m[2].slice("%keyring:".length) : m[2];
    const l = (target[key] ??= []);
    if (!l.includes(hex)) l.push(hex);
  });
  if (excludeList !== undefined) p.excludes = parseExcludeList(excludeList);
  compileExcludes(p.excludes);
  return p;
}

/** Keylime's exclude list: one regular expression a line; blank lines and "#" comments skipped. */
function parseExcludeList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

/** A Keylime policy in any of its forms, from file bytes: JSON (current or legacy) or a flat allowlist. */
export function importKeylime(bytes: Buffer, name: string, excludeList?: string): RuntimePolicy {
  const text = bytes.toString("utf8");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return importKeylimeAllowlist(text, name, excludeList);
  }
  return importKeylimePolicy(doc, name, excludeList);
}
