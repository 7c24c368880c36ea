/**
 * EK trust as a service over the store (the AD CS EKpub / EK certificate trust of tpmtrust): the
 * allow-list (database entries plus AD CS-style folders), manufacturer roots (EKROOT) and
 * intermediates (EKCA), and the decision "does the configured trust accept this TPM, by which method,
 * and why not". The configuration is re-read on every decision, so a change made by another
 * instance, the CLI, or a file dropped into an allow-list folder takes effect without a restart.
 * Every change is audited.
 */
import { isAbsolute, resolve } from "node:path";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import { normalizeEkHash, type AllowlistEntry, type EkCaKind, type PolicyVersion, type Store } from "../store/index.js";
import type { PublicKeyInput } from "../crypto/keys.js";
import {
  classifyCertificates,
  evaluateEkTrust,
  loadCertificate,
  loadCertificates,
  parseCertificateDer,
  requireEkTrust,
  type EkCertificateOutcome,
  type EkTrustMethod,
  type EkTrustResult,
  type MethodOutcome,
  type ParsedCertificate,
} from "../verify/ek/index.js";
import { loadAllowlistDir, type SkippedFile } from "./trust-files.js";

/** Who made a change or asked, and when (epoch ms): every call that decides or changes something takes one. */
export interface Caller {
  actor: string;
  now: number;
}

/** The trust configuration at one moment. */
export interface TrustSnapshot {
  /** allow-listed EK hashes (lowercase) and where each came from: "db" or the folder's path */
  allowlist: Map<string, string>;
  /** revoked EK hashes (lowercase): trusted by no method */
  revoked: Set<string>;
  roots: ParsedCertificate[];
  intermediates: ParsedCertificate[];
  /** allow-list folders that could not be read, stored certificates that no longer parse */
  warnings: string[];
}

// Parsed certificates by SHA-256 of their DER: parsing is a pure function of the bytes, so this
// cache can never be stale; which certificates are trusted is read from the store every time.
const parsed = new Map<string, ParsedCertificate>();
const MAX_CACHED = 4096;

function parseStored(fingerprint: string, der: Buffer): ParsedCertificate {
  let c = parsed.get(fingerprint);
  if (!c) {
    c = parseCertificateDer(der);
    if (parsed.size >= MAX_CACHED) parsed.clear();
    parsed.set(fingerprint, c);
  }
  return c;
}

/** Reads the whole trust configuration: database entries, every allow-list folder, EKROOT and EKCA. */
export async function trustSnapshot(store: Store): Promise<TrustSnapshot> {
  const warnings: string[] = [];
  const allowlist = new Map<string, string>();
  for (const e of await store.trust.listAllowlist()) allowlist.set(e.ekHash, "db");
  for (const d of await store.trust.listAllowlistDirs()) {
    try {
      for (const h of loadAllowlistDir(d.path).hashes) if (!allowlist.has(h)) allowlist.set(h, d.path);
    } catch (e) {
      if (!isTpmTrustError(e)) throw e;
      warnings.push(`allow-list folder ${d.path} could not be read: ${e.message}`);
    }
  }
  const certs = async (kind: EkCaKind) =>
    (await store.trust.listCaCerts(kind)).flatMap((c) => {
      try {
        return [parseStored(c.fingerprint, c.der)];
      } catch (e) {
        if (!isTpmTrustError(e)) throw e;
        warnings.push(`stored ${kind} ${c.fingerprint} (${c.subject}) does not parse: ${e.message}`);
        return [];
      }
    });
  const revoked = new Set((await store.trust.listRevokedEks()).map((r) => r.ekHash));
  return { allowlist, revoked, roots: await certs("root"), intermediates: await certs("intermediate"), warnings };
}

// ---- allow-list

export interface AllowlistView {
  ekHash: string;
  label: string | null;
  /** null for folder entries (the file's presence is the entry) */
  addedAt: number | null;
  /** "db", or the allow-list folder the hash was found in */
  source: string;
}

/** Database entries and every folder's entries (a hash in several places is listed once per place). */
export async function listAllowlist(store: Store): Promise<{ entries: AllowlistView[]; warnings: string[] }> {
  const entries: AllowlistView[] = (await store.trust.listAllowlist()).map((e: AllowlistEntry) => ({ ekHash: e.ekHash, label: e.label, addedAt: e.addedAt, source: "db" }));
  const warnings: string[] = [];
  for (const d of await store.trust.listAllowlistDirs()) {
    try {
      for (const h of [...loadAllowlistDir(d.path).hashes].sort()) entries.push({ ekHash: h, label: null, addedAt: null, source: d.path });
    } catch (e) {
      if (!isTpmTrustError(e)) throw e;
      warnings.push(`allow-list folder ${d.path} could not be read: ${e.message}`);
    }
  }
  return { entries, warnings };
}

export async function addAllowlist(store: Store, o: { ekHash: string; label?: string | null; via: string }, c: Caller): Promise<{ entry: AllowlistView; added: boolean }> {
  const ekHash = normalizeEkHash(o.ekHash);
  const added = await store.transaction(async (tx) => {
    const added = await tx.trust.addAllowlist(ekHash, { label: o.label ?? null, source: o.via, at: c.now });
    await tx.audit.append({ actor: c.actor, action: "trust.allowlist.add", subject: ekHash, outcome: "success", details: { label: o.label ?? null, added }, at: c.now });
    return added;
  });
  const e = (await store.trust.listAllowlist()).find((x) => x.ekHash === ekHash)!;
  return { entry: { ekHash, label: e.label, addedAt: e.addedAt, source: "db" }, added };
}

/** Removes a database entry; ERR_NOT_FOUND if there is none (folder entries are removed by deleting the file). */
export async function removeAllowlist(store: Store, ekHash: string, c: Caller): Promise<void> {
  const h = normalizeEkHash(ekHash);
  const removed = await store.transaction(async (tx) => {
    const removed = await tx.trust.removeAllowlist(h);
    await tx.audit.append({ actor: c.actor, action: "trust.allowlist.remove", subject: h, outcome: removed ? "success" : "failure", details: removed ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
    return removed;
  });
  if (!removed) throw new TpmTrustError("ERR_NOT_FOUND", `EK hash ${h} is not in the database allow-list`);
}

// ---- revoked EKs

export interface RevokedEkView {
  ekHash: string;
  reason: string | null;
  revokedAt: number;
}

export const listRevokedEks = (store: Store): Promise<RevokedEkView[]> => store.trust.listRevokedEks();

/**
 * Revokes an EK: from the next decision on (any instance) it is trusted by no method, whatever
 * allow-list entry, folder or certificate vouches for it: no host with it attests, gets a token,
 * an AK, a certificate or a key, and no device with it registers (DPS). Audited as trust.ek.revoke.
 */
export async function revokeEk(store: Store, o: { ekHash: string; reason?: string | null }, c: Caller): Promise<{ entry: RevokedEkView; added: boolean }> {
  const ekHash = normalizeEkHash(o.ekHash);
  const added = await store.transaction(async (tx) => {
    const added = await tx.trust.revokeEk(ekHash, { reason: o.reason ?? null, at: c.now });
    await tx.audit.append({ actor: c.actor, action: "trust.ek.revoke", subject: ekHash, outcome: "success", details: { reason: o.reason ?? null, added }, at: c.now });
    return added;
  });
  const entry = (await store.trust.listRevokedEks()).find((x) => x.ekHash === ekHash)!;
  return { entry, added };
}

/** Lifts a revocation; ERR_NOT_FOUND if the EK is not revoked. Audited as trust.ek.unrevoke. */
export async function unrevokeEk(store: Store, ekHash: string, c: Caller): Promise<void> {
  const h = normalizeEkHash(ekHash);
  const removed = await store.transaction(async (tx) => {
    const removed = await tx.trust.unrevokeEk(h);
    await tx.audit.append({ actor: c.actor, action: "trust.ek.unrevoke", subject: h, outcome: removed ? "success" : "failure", details: removed ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
    return removed;
  });
  if (!removed) throw new TpmTrustError("ERR_NOT_FOUND", `EK ${h} is not revoked`);
}

/** ERR_EK_REVOKED if the EK with this hash is revoked. */
export async function requireNotRevoked(store: Store, ekHash: string): Promise<void> {
  const h = normalizeEkHash(ekHash);
  const r = (await store.trust.listRevokedEks()).find((x) => x.ekHash === h);
  if (r) throw new TpmTrustError("ERR_EK_REVOKED", `EK ${h} is revoked${r.reason ? `: ${r.reason}` : ""}`, { ekHash: h, revokedAt: r.revokedAt });
}

// ---- allow-list folders

export interface AllowlistDirView {
  path: string;
  addedAt: number;
  /** allow-listed hashes found there now (null when the folder cannot be read) */
  entries: number | null;
  ignored: SkippedFile[];
  error?: string;
}

function describeDir(path: string, addedAt: number): AllowlistDirView {
  try {
    const d = loadAllowlistDir(path);
    return { path, addedAt, entries: d.hashes.size, ignored: d.ignored };
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return { path, addedAt, entries: null, ignored: [], error: e.message };
  }
}

export async function listAllowlistDirs(store: Store): Promise<AllowlistDirView[]> {
  return (await store.trust.listAllowlistDirs()).map((d) => describeDir(d.path, d.addedAt));
}

/** Registers a folder (absolute path; it must be readable and safe now: see checkTrustedFolder). */
export async function addAllowlistDir(store: Store, path: string, c: Caller): Promise<{ dir: AllowlistDirView; added: boolean }> {
  if (!isAbsolute(path)) throw new TpmTrustError("ERR_VALIDATION", `${path} is not an absolute path: allow-list folders are named by absolute path`, { path });
  const abs = resolve(path);
  try {
    loadAllowlistDir(abs);
  } catch (e) {
    // refused now rather than a silently empty folder later
    if (isTpmTrustError(e) && e.code === "ERR_IO") throw new TpmTrustError("ERR_VALIDATION", `${abs} is not a readable folder: ${e.message}`, { path: abs });
    throw e;
  }
  const added = await store.transaction(async (tx) => {
    const added = await tx.trust.addAllowlistDir(abs, c.now);
    await tx.audit.append({ actor: c.actor, action: "trust.allowlist-dir.add", subject: abs, outcome: "success", details: { added }, at: c.now });
    return added;
  });
  const d = (await store.trust.listAllowlistDirs()).find((x) => x.path === abs)!;
  return { dir: describeDir(abs, d.addedAt), added };
}

export async function removeAllowlistDir(store: Store, path: string, c: Caller): Promise<void> {
  const abs = resolve(path);
  const removed = await store.transaction(async (tx) => {
    const removed = await tx.trust.removeAllowlistDir(abs);
    await tx.audit.append({ actor: c.actor, action: "trust.allowlist-dir.remove", subject: abs, outcome: removed ? "success" : "failure", details: removed ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
    return removed;
  });
  if (!removed) throw new TpmTrustError("ERR_NOT_FOUND", `${abs} is not a registered allow-list folder`);
}

// ---- manufacturer roots and intermediates

export interface CaView {
  /** SHA-256 of the DER, lowercase hex */
  id: string;
  kind: EkCaKind;
  subject: string;
  notBefore: string;
  notAfter: string;
  addedAt: number;
}

export async function listCas(store: Store): Promise<CaView[]> {
  const out: CaView[] = [];
  for (const kind of ["root", "intermediate"] as const) {
    for (const c of await store.trust.listCaCerts(kind)) {
      let validity: { notBefore: string; notAfter: string };
      try {
        const p = parseStored(c.fingerprint, c.der);
        validity = { notBefore: p.notBefore.toISOString(), notAfter: p.notAfter.toISOString() };
      } catch {
        validity = { notBefore: "", notAfter: "" };
      }
      out.push({ id: c.fingerprint, kind, subject: c.subject, ...validity, addedAt: c.addedAt });
    }
  }
  return out;
}

export interface ImportResult {
  added: CaView[];
  /** already in the store (same DER, same role) */
  present: CaView[];
  /** inputs not imported, with the reason */
  skipped: SkippedFile[];
}

async function storeAnchors(store: Store, entries: { cert: ParsedCertificate; kind: EkCaKind }[], skipped: SkippedFile[], c: Caller, source: unknown): Promise<ImportResult> {
  // the certificates and their audit entry commit together, or none of them does
  return store.transaction(async (tx) => {
    const added: CaView[] = [];
    const present: CaView[] = [];
    for (const { cert, kind } of entries) {
      const r = await tx.trust.addCaCert(kind, cert.der, cert.label, c.now);
      const view: CaView = { id: r.fingerprint, kind, subject: cert.label, notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString(), addedAt: c.now };
      (r.added ? added : present).push(view);
    }
    await tx.audit.append({
      actor: c.actor,
      action: "trust.ca.import",
      subject: null,
      outcome: "success",
      details: { source, added: added.map((a) => ({ id: a.id, kind: a.kind, subject: a.subject })), present: present.length, skipped },
      at: c.now,
    });
    return { added, present, skipped };
  });
}

/**
 * Imports certificates sent as DER (or PEM) values, each with the role it was given (a vendor
 * folder's RootCA/IntermediateCA) or none. `kind` forces the role of all; otherwise self-signed
 * ones become roots and the rest intermediates. Unparseable values are skipped and reported by index.
 */
export async function importCaCertificates(store: Store, certs: readonly (Uint8Array | { der: Uint8Array; kind: EkCaKind })[], o: { kind?: EkCaKind }, c: Caller): Promise<ImportResult> {
  const skipped: SkippedFile[] = [];
  const entries: { cert: ParsedCertificate; role?: EkCaKind }[] = [];
  certs.forEach((v, i) => {
    const [bytes, given] = v instanceof Uint8Array ? [v, undefined] : [v.der, v.kind];
    const role = o.kind ?? given;
    try {
      for (const cert of loadCertificates(bytes)) entries.push({ cert, ...(role ? { role } : {}) });
    } catch (e) {
      if (!isTpmTrustError(e)) throw e;
      skipped.push({ path: `certificates[${i}]`, reason: `${e.code}: ${e.message}` });
    }
  });
  return storeAnchors(store, classified(entries), skipped, c, { kind: o.kind ?? "auto", count: certs.length });
}

function classified(entries: { cert: ParsedCertificate; role?: EkCaKind }[]): { cert: ParsedCertificate; kind: EkCaKind }[] {
  const a = classifyCertificates(entries);
  return [...a.roots.map((cert) => ({ cert, kind: "root" as const })), ...a.intermediates.map((cert) => ({ cert, kind: "intermediate" as const }))];
}

/** Removes a root or intermediate by id (its SHA-256); ERR_NOT_FOUND if neither holds it. */
export async function removeCa(store: Store, id: string, c: Caller): Promise<EkCaKind> {
  const fp = id.toLowerCase();
  const kind = await store.transaction(async (tx) => {
    let kind: EkCaKind | undefined;
    for (const k of ["root", "intermediate"] as const) if (!kind && (await tx.trust.removeCaCert(k, fp))) kind = k;
    await tx.audit.append({ actor: c.actor, action: "trust.ca.remove", subject: fp, outcome: kind ? "success" : "failure", details: kind ? { kind } : { code: "ERR_NOT_FOUND" }, at: c.now });
    return kind;
  });
  if (!kind) throw new TpmTrustError("ERR_NOT_FOUND", `no EK root or intermediate with id ${fp}`);
  return kind;
}

// ---- decisions

export interface EkEvidence {
  /** the EK: TPMT_PUBLIC, KeyObject or SPKI */
  ekPublic?: PublicKeyInput;
  /** EK certificates as read from NV or sent (DER/PEM, or parsed); judged one by one */
  ekCerts?: readonly (Uint8Array | ParsedCertificate)[];
  /** intermediates the client supplied, used for path building only */
  intermediates?: readonly ParsedCertificate[];
}

export interface EkDecision extends EkTrustResult {
  /** where the allow-listed hash was found ("db" or a folder) */
  allowlistSource?: string;
  warnings: string[];
}

/** Evaluates both EK trust methods against the current configuration at `at`. Never throws for evidence that fails. */
export async function evaluateEk(store: Store, ev: EkEvidence, at: Date): Promise<EkDecision> {
  return evaluateEkIn(await trustSnapshot(store), ev, at);
}

// one set per snapshot: the trust sweep judges many hosts against one snapshot
const allowlists = new WeakMap<TrustSnapshot, ReadonlySet<string>>();
function allowlistOf(snap: TrustSnapshot): ReadonlySet<string> {
  let a = allowlists.get(snap);
  if (!a) allowlists.set(snap, (a = new Set(snap.allowlist.keys())));
  return a;
}

/** evaluateEk against a configuration already read. */
export function evaluateEkIn(snap: TrustSnapshot, ev: EkEvidence, at: Date): EkDecision {
  const r = evaluateEkTrust({
    ...(ev.ekPublic !== undefined ? { ekPublic: ev.ekPublic } : {}),
    ekCerts: ev.ekCerts ?? [],
    intermediates: [...snap.intermediates, ...(ev.intermediates ?? [])],
    roots: snap.roots,
    allowlist: allowlistOf(snap),
    revoked: snap.revoked,
    at,
  });
  const src = r.methods["ek-key"].passed && r.ekHash ? snap.allowlist.get(r.ekHash) : undefined;
  return { ...r, ...(src ? { allowlistSource: src } : {}), warnings: snap.warnings };
}

/**
 * The trust methods a host's policy version accepts. v2 (default): a trusted EK certificate. v1: a
 * certificate or the allow-list; without a certificate for this EK, the allow-list alone decides.
 */
function methodsFor(policyVersion: PolicyVersion, haveCertificate: boolean): EkTrustMethod[] {
  if (policyVersion === "v2") return ["ek-cert"];
  return haveCertificate ? ["ek-cert", "ek-key"] : ["ek-key"];
}

/**
 * Throws unless the policy version's methods pass, and returns the method that did (ek-cert
 * preferred). Codes: ERR_EK_CERT_REQUIRED (v2, no certificate for this EK among those given),
 * ERR_EK_NOT_ALLOWLISTED (v1, no certificate, hash not listed), ERR_EK_NOT_TRUSTED (a certificate
 * for this EK that does not validate, and for v1 not allow-listed either), ERR_EK_REVOKED (an
 * administrator revoked this EK: before anything else).
 */
export function requireForPolicy(d: EkDecision, policyVersion: PolicyVersion): EkTrustMethod {
  if (d.methods["ek-key"].code === "ERR_EK_REVOKED") requireEkTrust(d, ["ek-key"]);
  // certificates for other keys (a TPM holds one per EK) say nothing about this EK
  const own = d.certificates.some((c) => c.code !== "ERR_KEY_MISMATCH");
  if (policyVersion === "v2" && !own && !d.methods["ek-cert"].passed) {
    throw new TpmTrustError("ERR_EK_CERT_REQUIRED", `policy version v2 requires a trusted EK certificate, and none was given for this EK${d.ekHash ? ` (${d.ekHash})` : ""}`, {
      methods: { "ek-cert": d.methods["ek-cert"] },
    });
  }
  const methods = methodsFor(policyVersion, own);
  requireEkTrust(d, methods);
  return methods.find((m) => d.methods[m].passed)!;
}

export interface ConfirmResult {
  trusted: boolean;
  ekHash: string | null;
  /** the methods that passed */
  passed: EkTrustMethod[];
  methods: Record<EkTrustMethod, MethodOutcome>;
  /** one per EK certificate: path, TCG facts, tolerances, or the reason it failed */
  certificates: EkCertificateOutcome[];
  allowlistSource?: string;
  at: string;
  warnings: string[];
}

export type ConfirmInput = { ekHash: string } | { ekCertificates?: readonly Uint8Array[]; intermediates?: readonly Uint8Array[]; ekPublic?: PublicKeyInput };

/**
 * Confirm-CAEndorsementKeyInfo: does the configured trust accept this TPM at `at`, by which method,
 * and why not. An EK hash can only pass `ek-key`; certificates (with client intermediates) and/or
 * the EK public key are judged by both methods. Unparseable input is the caller's error
 * (ERR_PARSE_CERT); untrusted evidence is a result, not an error. Audited as trust.confirm.
 */
export async function confirm(store: Store, input: ConfirmInput, o: Caller & { at?: Date }): Promise<ConfirmResult> {
  const at = o.at ?? new Date(o.now);
  let r: EkDecision;
  if ("ekHash" in input) {
    const h = normalizeEkHash(input.ekHash);
    const snap = await trustSnapshot(store);
    const src = snap.revoked.has(h) ? undefined : snap.allowlist.get(h);
    r = {
      trusted: src !== undefined,
      ekHash: h,
      methods: {
        "ek-key": snap.revoked.has(h) ? { passed: false, code: "ERR_EK_REVOKED", reason: `EK ${h} is revoked` } : src !== undefined ? { passed: true, reason: `EK hash ${h} is allow-listed (${src === "db" ? "database" : `folder ${src}`})` } : { passed: false, code: "ERR_EK_NOT_ALLOWLISTED", reason: `EK hash ${h} is not allow-listed` },
        "ek-cert": { passed: false, code: "ERR_EK_CERT_REQUIRED", reason: "only an EK hash was given; an EK certificate is needed for this method" },
      },
      certificates: [],
      ...(src ? { allowlistSource: src } : {}),
      warnings: snap.warnings,
    };
  } else {
    const ekCerts = input.ekCertificates ?? [];
    if (ekCerts.length === 0 && input.ekPublic === undefined) throw new TpmTrustError("ERR_USAGE", "give an EK hash, an EK certificate, or the EK public key");
    ekCerts.forEach((c) => loadCertificate(c));
    const intermediates = (input.intermediates ?? []).flatMap((c) => loadCertificates(c));
    r = await evaluateEk(store, { ...(input.ekPublic !== undefined ? { ekPublic: input.ekPublic } : {}), ekCerts, intermediates }, at);
  }
  const passed = (["ek-key", "ek-cert"] as const).filter((m) => r.methods[m].passed);
  const result: ConfirmResult = {
    trusted: r.trusted,
    ekHash: r.ekHash ?? null,
    passed,
    methods: r.methods,
    certificates: r.certificates,
    ...(r.allowlistSource ? { allowlistSource: r.allowlistSource } : {}),
    at: at.toISOString(),
    warnings: r.warnings,
  };
  await store.audit.append({
    actor: o.actor,
    action: "trust.confirm",
    subject: result.ekHash,
    outcome: result.trusted ? "success" : "failure",
    details: { passed, at: result.at, reasons: Object.fromEntries(Object.entries(r.methods).map(([m, v]) => [m, v.code ?? "passed"])) },
    at: o.now,
  });
  return result;
}
