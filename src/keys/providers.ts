/**
 * Trusted key providers and their key servers (admin only): a provider is a name, a key server, a
 * primary key id and versioned keys. Several providers may share a key server. Rotation makes a
 * new version that encrypts from then on; older versions still decrypt until they are retired.
 * Every change is audited.
 */
import { TpmTrustError } from "../errors.js";
import type { Cluster, KeyProvider, KeyServer as KeyServerRecord, KeyVersion, Store } from "../store/index.js";
import { PROVIDER_NAME_PATTERN } from "./envelope.js";
import { storeKeyDir } from "./key-dir.js";
import { keyServerFor, keyServerKind } from "./kinds.js";
import type { Caller } from "../trust/trust.js";

export const KEY_SERVER_NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,62}$";
/** Primary key ids: a label for the key server (PKCS#11 CKA_LABEL, a KMS alias …). */
export const KEY_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$";
/** The key server `providers add` uses when none is named; created on first use (kind local). */
export const DEFAULT_KEY_SERVER = "local";

export type { Caller };

function check(value: string, pattern: string, field: string): string {
  if (!new RegExp(pattern).test(value)) throw new TpmTrustError("ERR_VALIDATION", `${field} must match ${pattern}, got ${JSON.stringify(value)}`, { field });
  return value;
}

const notFound = (what: string) => new TpmTrustError("ERR_NOT_FOUND", `no ${what}`);

export async function addKeyServer(store: Store, s: { name: string; kind: string; config?: Record<string, unknown> }, c: Caller): Promise<KeyServerRecord> {
  check(s.name, KEY_SERVER_NAME_PATTERN, "name");
  const config = keyServerKind(s.kind).configure(s.config ?? {}, storeKeyDir(store));
  // a key server that cannot be used now is refused now, not at the first host's request
  const probe = keyServerKind(s.kind).open(config, storeKeyDir(store));
  try {
    await probe.check();
  } finally {
    await probe.close();
  }
  return store.transaction(async (tx) => {
    const rec = await tx.keys.addServer({ name: s.name, kind: s.kind, config, at: c.now });
    await tx.audit.append({ actor: c.actor, action: "keys.server.add", subject: s.name, outcome: "success", details: { kind: s.kind, config }, at: c.now });
    return rec;
  });
}

export const listKeyServers = (store: Store): Promise<KeyServerRecord[]> => store.keys.listServers();

async function serverRecord(store: Store, name: string, c: Caller): Promise<KeyServerRecord> {
  const rec = await store.keys.getServer(name);
  if (rec) return rec;
  if (name !== DEFAULT_KEY_SERVER) throw notFound(`key server named ${JSON.stringify(name)}`);
  return addKeyServer(store, { name, kind: "local" }, c).catch(async (e) => {
    // another instance made it in the meantime
    const made = e instanceof TpmTrustError && e.code === "ERR_CONFLICT" ? await store.keys.getServer(name) : undefined;
    if (!made) throw e;
    return made;
  });
}

export interface ProviderView extends KeyProvider {
  kind: string;
  versions: Omit<KeyVersion, "keyRef" | "providerName">[];
  /** clusters whose hosts may use it */
  clusters: string[];
}

function view(p: KeyProvider, kind: string, versions: KeyVersion[], clusters: Cluster[]): ProviderView {
  return {
    ...p,
    kind,
    versions: versions.map(({ version, createdAt, retiredAt }) => ({ version, createdAt, retiredAt })),
    clusters: clusters.filter((cl) => cl.providers.includes(p.name)).map((cl) => cl.name),
  };
}

export async function getProvider(store: Store, name: string): Promise<ProviderView> {
  const p = await store.keys.getProvider(name);
  if (!p) throw notFound(`key provider named ${JSON.stringify(name)}`);
  const server = await store.keys.getServer(p.keyServer);
  return view(p, server?.kind ?? "unknown", await store.keys.listVersions(name), await store.keys.listClusters());
}

export async function listProviders(store: Store): Promise<ProviderView[]> {
  const [providers, servers, clusters] = await Promise.all([store.keys.listProviders(), store.keys.listServers(), store.keys.listClusters()]);
  const kinds = new Map(servers.map((s) => [s.name, s.kind]));
  return Promise.all(providers.map(async (p) => view(p, kinds.get(p.keyServer) ?? "unknown", await store.keys.listVersions(p.name), clusters)));
}

/** Creates a provider with key version 1, made by its key server. */
export async function createProvider(store: Store, p: { name: string; keyServer?: string; primaryKeyId?: string }, c: Caller): Promise<ProviderView> {
  check(p.name, PROVIDER_NAME_PATTERN, "name");
  const primaryKeyId = check(p.primaryKeyId ?? `tpmtrust-${p.name}`, KEY_ID_PATTERN, "primaryKeyId");
  if (await store.keys.getProvider(p.name)) throw new TpmTrustError("ERR_CONFLICT", `key provider ${p.name} exists`);
  const rec = await serverRecord(store, p.keyServer ?? DEFAULT_KEY_SERVER, c);
  const server = keyServerFor(store, rec);
  const adopted = await server.adoptKey?.(primaryKeyId);
  const keyRef = adopted ?? (await server.createKey(primaryKeyId));
  await store.transaction(async (tx) => {
    await tx.keys.createProvider({ name: p.name, keyServer: rec.name, primaryKeyId, keyRef, at: c.now });
    await tx.audit.append({ actor: c.actor, action: "keys.provider.create", subject: p.name, outcome: "success", details: { keyServer: rec.name, kind: rec.kind, primaryKeyId, version: 1, key: adopted ? "adopted" : "created" }, at: c.now });
  });
  return getProvider(store, p.name);
}

export async function setProviderEnabled(store: Store, name: string, enabled: boolean, c: Caller): Promise<ProviderView> {
  await store.transaction(async (tx) => {
    await tx.keys.setProviderEnabled(name, enabled, c.now);
    await tx.audit.append({ actor: c.actor, action: enabled ? "keys.provider.enable" : "keys.provider.disable", subject: name, outcome: "success", at: c.now });
  });
  return getProvider(store, name);
}

/** A new key version from the provider's key server becomes current. */
export async function rotateProvider(store: Store, name: string, c: Caller): Promise<ProviderView> {
  const p = await store.keys.getProvider(name);
  if (!p) throw notFound(`key provider named ${JSON.stringify(name)}`);
  const rec = await store.keys.getServer(p.keyServer);
  if (!rec) throw notFound(`key server named ${JSON.stringify(p.keyServer)}`);
  const keyRef = await keyServerFor(store, rec).createKey(p.primaryKeyId);
  await store.transaction(async (tx) => {
    const v = await tx.keys.rotate(name, keyRef, c.now);
    await tx.audit.append({ actor: c.actor, action: "keys.provider.rotate", subject: name, outcome: "success", details: { version: v.version, previous: v.version - 1 }, at: c.now });
  });
  return getProvider(store, name);
}

/** Retires an old version: envelopes it sealed no longer decrypt (ERR_KEY_RETIRED). */
export async function retireVersion(store: Store, name: string, version: number, c: Caller): Promise<ProviderView> {
  const v = await store.keys.getVersion(name, version);
  if (!v) throw notFound(`version ${version} of key provider ${JSON.stringify(name)}`);
  if (v.retiredAt !== null) throw new TpmTrustError("ERR_CONFLICT", `version ${version} of ${name} is already retired`);
  const p = await store.keys.getProvider(name);
  if (p?.currentVersion === version) throw new TpmTrustError("ERR_CONFLICT", "the current key version cannot be retired; rotate first");
  const rec = p && (await store.keys.getServer(p.keyServer));
  // the key server first: when it cannot retire the key, nothing changes
  if (p && rec) await keyServerFor(store, rec).retireKey?.({ keyId: p.primaryKeyId, version, ref: v.keyRef });
  await store.transaction(async (tx) => {
    const changed = await tx.keys.retireVersion(name, version, c.now);
    if (!changed) throw new TpmTrustError("ERR_CONFLICT", `version ${version} of ${name} is already retired`);
    await tx.audit.append({ actor: c.actor, action: "keys.version.retire", subject: name, outcome: "success", details: { version }, at: c.now });
  });
  return getProvider(store, name);
}
