/**
 * Does a registered host's TPM still satisfy EK trust under its policy version? Asked by every
 * decision that relies on it (attestation verdicts, key release, certificate enrollment), so trust
 * withdrawn (a root, an intermediate, an allow-list entry, folder or file removed) takes effect at
 * the next one. The evaluation is cached per host and reused only while nothing it depends on can
 * have changed: the database's trust version (bumped by every trust change, by any instance), the
 * allow-list folders' modification times, and no certificate's validity boundary passed since.
 */
import { statSync } from "node:fs";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import type { Host, Store } from "../store/index.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import { loadCertificate, type EkTrustMethod, type ParsedCertificate } from "../verify/ek/index.js";
import { evaluateEkIn, requireForPolicy, trustSnapshot } from "./trust.js";

type HostRef = Pick<Host, "name" | "createdAt" | "policyVersion" | "disabledAt">;

interface Entry {
  stamp: string;
  evaluatedAt: number;
  /** the first time after evaluatedAt at which a certificate becomes valid or expires */
  nextChange: number;
  method?: EkTrustMethod;
  error?: TpmTrustError;
}

const MAX_ENTRIES = 100_000;
const cache = new Map<string, Entry>();
let dirsOf: { version: number; paths: string[] } | undefined;

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

function nextChange(certs: readonly ParsedCertificate[], at: number): number {
  let next = Infinity;
  for (const c of certs) {
    for (const t of [c.notBefore.getTime(), c.notAfter.getTime() + 1]) if (t > at && t < next) next = t;
  }
  return next;
}

async function evaluate(store: Store, host: HostRef, at: number): Promise<Omit<Entry, "stamp">> {
  const snap = await trustSnapshot(store);
  const full = await store.hosts.get(host.name);
  const certs = [...snap.roots, ...snap.intermediates];
  let method: EkTrustMethod = "ek-cert";
  try {
    if (!full || full.eks.length === 0) throw new TpmTrustError("ERR_EK_NOT_TRUSTED", `host ${host.name} has no registered EK`);
    // the host is as trusted as its weakest registered EK, as when it was registered
    for (const ek of full.eks) {
      if (ek.cert) {
        try {
          certs.push(loadCertificate(ek.cert));
        } catch {
          // an unparseable stored certificate fails below, whatever the time
        }
      }
      const d = evaluateEkIn(snap, { ekPublic: decodeTpmtPublic(ek.public), ekCerts: ek.cert ? [ek.cert] : [] }, new Date(at));
      try {
        if (requireForPolicy(d, host.policyVersion) === "ek-key") method = "ek-key";
      } catch (e) {
        if (!isTpmTrustError(e)) throw e;
        throw new TpmTrustError("ERR_EK_NOT_TRUSTED", `host ${host.name}'s EK ${ek.name.toString("hex")} is no longer trusted under policy version ${host.policyVersion}: ${e.message}`, {
          host: host.name,
          ekName: ek.name.toString("hex"),
          policyVersion: host.policyVersion,
          cause: e.code,
        });
      }
    }
    return { evaluatedAt: at, nextChange: nextChange(certs, at), method };
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { evaluatedAt: at, nextChange: nextChange(certs, at), error: e };
  }
}

/**
 * The EK trust method the host's TPM passes now under its policy version, or ERR_EK_NOT_TRUSTED
 * (details.cause: the specific reason, e.g. ERR_EK_CERT_REQUIRED, ERR_CHAIN_UNTRUSTED,
 * ERR_EK_NOT_ALLOWLISTED) when it no longer does.
 */
export async function requireHostEkTrust(store: Store, host: HostRef, at: number, trustVersion?: number): Promise<EkTrustMethod> {
  const key = `${host.name}|${host.createdAt}|${host.policyVersion}`;
  const stamp = await trustStamp(store, trustVersion);
  let e = cache.get(key);
  if (!e || e.stamp !== stamp || at < e.evaluatedAt || at >= e.nextChange) {
    e = { stamp, ...(await evaluate(store, host, at)) };
    if (cache.size >= MAX_ENTRIES) cache.clear();
    cache.set(key, e);
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
