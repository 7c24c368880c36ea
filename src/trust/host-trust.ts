/**
 * Does a registered host's TPM still satisfy EK trust under its policy version? Asked by every
 * decision that relies on it (attestation verdicts, key release, certificate enrollment), so trust
 * withdrawn (a root, an intermediate, an allow-list entry, folder or file removed) takes effect at
 * the next one. The evaluation is cached per host and reused only while nothing it depends on can
 * have changed: the database's trust version (bumped by every trust change, by any instance), the
 * allow-list folders' modification times, and no certificate's validity boundary passed since.
 * The trust sweep asks less of a passing evaluation under a newer stamp (knownHostEkTrust): only
 * that what it rested on is still there.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import type { Host, HostEk, Store } from "../store/index.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import { loadCertificate, type EkTrustMethod, type ParsedCertificate } from "../verify/ek/index.js";
import { evaluateEkIn, requireForPolicy, trustSnapshot, type TrustSnapshot } from "./trust.js";

type HostRef = Pick<Host, "name" | "createdAt" | "policyVersion" | "disabledAt">;

/**
 * What a passing evaluation rested on, per EK: while its hash is not revoked and what its method
 * used is still there (the allow-list entry, or every certificate of the path with its anchor still
 * a root), it passes again. Trust only grows with entries, roots and intermediates added (the path
 * search tries every candidate issuer), so nothing else can take it away before `nextChange`.
 */
interface Basis {
  ekHash: string;
  /** the first time at which a certificate the basis rests on (the EK certificate included) expires */
  until: number;
  /** the allow-listed hash (ek-key), or the path's certificates below the leaf, anchor last (ek-cert) */
  allowlisted?: string;
  path?: string[];
}

interface Entry {
  stamp: string;
  evaluatedAt: number;
  /** the first time after evaluatedAt at which a certificate becomes valid or expires */
  nextChange: number;
  method?: EkTrustMethod;
  error?: TpmTrustError;
  basis?: Basis[];
}

/** The trust configuration read once for judging many hosts (the trust sweep), with its stamp. */
export interface TrustView {
  stamp: string;
  snap: TrustSnapshot;
  /** SHA-256 of the DER of every root */
  roots: Set<string>;
  /** the end of validity (epoch ms) of every root and intermediate, by SHA-256 of its DER */
  cas: Map<string, number>;
}

const MAX_ENTRIES = 250_000;
const cache = new Map<string, Entry>();
let dirsOf: { version: number; paths: string[] } | undefined;

const sha256 = (der: Buffer) => createHash("sha256").update(der).digest("hex");
const keyOf = (host: HostRef) => `${host.name}|${host.createdAt}|${host.policyVersion}`;

/** What a cached evaluation depends on, read cheaply: one row (unless the caller read it) and one stat per allow-list folder. */
export async function trustStamp(store: Store, knownVersion?: number): Promise<string> {
  const version = knownVersion ?? (await store.trust.version());
  if (dirsOf?.version !== version) dirsOf = { version, paths: (await store.trust.listAllowlistDirs()).map((d) => d.path) };
  const dirs = dirsOf.paths.map((p) => {
    try {
      const st = statSync(p, { bigint: true });
      return `${p}:${st.ino}:${st.mtimeNs}`;
    } catch {
      return `${p}:-`;
    }
  });
  return [version, ...dirs].join("|");
}

function viewOf(stamp: string, snap: TrustSnapshot): TrustView {
  const cas = new Map([...snap.roots, ...snap.intermediates].map((c) => [sha256(c.der), c.notAfter.getTime()]));
  return { stamp, snap, roots: new Set(snap.roots.map((c) => sha256(c.der))), cas };
}

/** The stamp, then the configuration (read after it: never older than its stamp says). */
export async function readTrustView(store: Store): Promise<TrustView> {
  const stamp = await trustStamp(store);
  return viewOf(stamp, await trustSnapshot(store));
}

function nextChange(certs: readonly ParsedCertificate[], at: number): number {
  let next = Infinity;
  for (const c of certs) {
    for (const t of [c.notBefore.getTime(), c.notAfter.getTime() + 1]) if (t > at && t < next) next = t;
  }
  return next;
}

function judge(view: TrustView, host: HostRef, eks: readonly HostEk[], at: number): Omit<Entry, "stamp"> {
  const { snap } = view;
  const certs = [...snap.roots, ...snap.intermediates];
  let method: EkTrustMethod = "ek-cert";
  const basis: Basis[] = [];
  try {
    if (eks.length === 0) throw new TpmTrustError("ERR_EK_NOT_TRUSTED", `host ${host.name} has no registered EK`);
    // the host is as trusted as its weakest registered EK, as when it was registered
    for (const ek of eks) {
      let leaf: ParsedCertificate | undefined;
      if (ek.cert) {
        try {
          leaf = loadCertificate(ek.cert);
          certs.push(leaf);
        } catch {
          // an unparseable stored certificate fails below, whatever the time
        }
      }
      // parsed once: parsing is most of what judging a certificate costs
      const d = evaluateEkIn(snap, { ekPublic: decodeTpmtPublic(ek.public), ekCerts: ek.cert ? [leaf ?? ek.cert] : [] }, new Date(at));
      let m: EkTrustMethod;
      try {
        m = requireForPolicy(d, host.policyVersion);
      } catch (e) {
        if (!isTpmTrustError(e)) throw e;
        throw new TpmTrustError("ERR_EK_NOT_TRUSTED", `host ${host.name}'s EK ${ek.name.toString("hex")} is no longer trusted under policy version ${host.policyVersion}: ${e.message}`, {
          host: host.name,
          ekName: ek.name.toString("hex"),
          policyVersion: host.policyVersion,
          cause: e.code,
        });
      }
      if (m === "ek-key") method = "ek-key";
      const path = d.certificates.find((c) => c.passed)?.pathSha256?.slice(1);
      const until = Math.min(leaf?.notAfter.getTime() ?? Infinity, ...(path ?? []).map((c) => view.cas.get(c) ?? -Infinity)) + 1;
      basis.push(m === "ek-key" ? { ekHash: d.ekHash!, until: Infinity, allowlisted: d.ekHash! } : { ekHash: d.ekHash!, until, ...(path ? { path } : {}) });
    }
    return { evaluatedAt: at, nextChange: nextChange(certs, at), method, basis };
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { evaluatedAt: at, nextChange: nextChange(certs, at), error: e };
  }
}

function remember(key: string, e: Entry): Entry {
  // the oldest entry makes room (Map keeps insertion order)
  if (cache.size >= MAX_ENTRIES && !cache.has(key)) cache.delete(cache.keys().next().value!);
  cache.set(key, e);
  return e;
}

const fresh = (e: Entry, at: number) => at >= e.evaluatedAt && at < e.nextChange;

/** Does the basis of a passing evaluation still hold under `view` at `at`? */
function holds(b: Basis, view: TrustView, at: number): boolean {
  if (view.snap.revoked.has(b.ekHash) || at >= b.until) return false;
  if (b.allowlisted !== undefined) return view.snap.allowlist.has(b.allowlisted);
  return b.path !== undefined && b.path.length > 0 && b.path.every((c) => view.cas.has(c)) && view.roots.has(b.path.at(-1)!);
}

/**
 * What this instance already knows of the host's EK trust under `view` at `at`, without evaluating:
 * "trusted" when a cached evaluation under the same stamp passed, or a passing one's basis still
 * holds; the error of a failed one under the same stamp; undefined when it must be evaluated.
 */
export function knownHostEkTrust(view: TrustView, host: HostRef, at: number): "trusted" | TpmTrustError | undefined {
  const e = cache.get(keyOf(host));
  if (!e || at < e.evaluatedAt) return undefined;
  if (e.stamp === view.stamp && at < e.nextChange) return e.error ?? "trusted";
  // certificates that became valid or expired since only matter to the basis if it rests on them
  return !e.error && e.basis?.every((b) => holds(b, view, at)) ? "trusted" : undefined;
}

/** Evaluates the host's EK trust under `view` (its EKs given) and caches the outcome: the method, or the ERR_EK_NOT_TRUSTED error. */
export function judgeHostEkTrust(view: TrustView, host: HostRef, eks: readonly HostEk[], at: number): EkTrustMethod | TpmTrustError {
  const e = remember(keyOf(host), { stamp: view.stamp, ...judge(view, host, eks, at) });
  return e.error ?? e.method!;
}

/**
 * The EK trust method the host's TPM passes now under its policy version, or ERR_EK_NOT_TRUSTED
 * (details.cause: the specific reason, e.g. ERR_EK_CERT_REQUIRED, ERR_CHAIN_UNTRUSTED,
 * ERR_EK_NOT_ALLOWLISTED) when it no longer does.
 */
export async function requireHostEkTrust(store: Store, host: HostRef, at: number, trustVersion?: number): Promise<EkTrustMethod> {
  const key = keyOf(host);
  const stamp = await trustStamp(store, trustVersion);
  let e = cache.get(key);
  if (!e || e.stamp !== stamp || !fresh(e, at)) {
    // read after the stamp: never older than it says
    e = remember(key, { stamp, ...judge(viewOf(stamp, await trustSnapshot(store)), host, (await store.hosts.get(host.name))?.eks ?? [], at) });
  }
  if (e.error) throw e.error;
  return e.method!;
}

/**
 * May the host be vouched for now? ERR_DISABLED if an administrator disabled it, ERR_EK_NOT_TRUSTED
 * if its EK no longer passes EK trust under its policy version; else the EK trust method it passes.
 * `trustVersion`: the trust version the caller read along with the host (saves reading it).
 */
export async function requireHostTrusted(store: Store, host: HostRef, at: number, trustVersion?: number): Promise<EkTrustMethod> {
  requireEnabled(host);
  return requireHostEkTrust(store, host, at, trustVersion);
}

/** ERR_DISABLED while an administrator has disabled the host. */
export function requireEnabled(host: Pick<Host, "name" | "disabledAt">): void {
  if (host.disabledAt !== null) throw new TpmTrustError("ERR_DISABLED", `host ${host.name} is disabled`, { host: host.name, disabledAt: host.disabledAt });
}
