import { TpmTrustError } from "../../errors.js";
import { type Ctx, affected, forUpdate, fromJson, insertOrConflict, notFound, toJson } from "../ctx.js";
import type { ClustersTable, KeyProvidersTable, KeyVersionsTable } from "../schema.js";

export interface KeyServer {
  name: string;
  /** "local" | "pkcs11" | … */
  kind: string;
  /** kind-specific settings; never secrets in clear */
  config: Record<string, unknown>;
  createdAt: number;
}

export interface KeyProvider {
  name: string;
  keyServer: string;
  primaryKeyId: string;
  currentVersion: number;
  createdAt: number;
  disabledAt: number | null;
}

export interface KeyVersion {
  providerName: string;
  version: number;
  /** opaque reference the key server understands (object id, wrapped key …) */
  keyRef: string;
  createdAt: number;
  retiredAt: number | null;
}

export interface ClusterSelector {
  hosts?: string[];
  hardwareClasses?: string[];
  tags?: string[];
}

export interface Cluster {
  name: string;
  selector: ClusterSelector;
  /** key providers its hosts may use */
  providers: string[];
  createdAt: number;
  updatedAt: number;
}

const toProvider = (r: KeyProvidersTable): KeyProvider => ({
  name: r.name,
  keyServer: r.key_server,
  primaryKeyId: r.primary_key_id,
  currentVersion: r.current_version,
  createdAt: r.created_at,
  disabledAt: r.disabled_at,
});
const toVersion = (r: KeyVersionsTable): KeyVersion => ({ providerName: r.provider_name, version: r.version, keyRef: r.key_ref, createdAt: r.created_at, retiredAt: r.retired_at });
const toCluster = (r: ClustersTable): Cluster => ({
  name: r.name,
  selector: fromJson<ClusterSelector>(r.selector),
  providers: fromJson<string[]>(r.providers),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Key release: key servers, trusted key providers with versioned keys, trusted clusters. */
export function keysRepo(ctx: Ctx) {
  return {
    async addServer(s: { name: string; kind: string; config: Record<string, unknown>; at: number }): Promise<KeyServer> {
      const at = s.at;
      await insertOrConflict(ctx.db.insertInto("key_servers").values({ name: s.name, kind: s.kind, config: toJson(s.config), created_at: at }).execute(), `key server ${s.name} exists`);
      return { name: s.name, kind: s.kind, config: s.config, createdAt: at };
    },
    async getServer(name: string): Promise<KeyServer | undefined> {
      const r = await ctx.db.selectFrom("key_servers").selectAll().where("name", "=", name).executeTakeFirst();
      return r ? { name: r.name, kind: r.kind, config: fromJson(r.config), createdAt: r.created_at } : undefined;
    },
    async listServers(): Promise<KeyServer[]> {
      return (await ctx.db.selectFrom("key_servers").selectAll().orderBy("name").execute()).map((r) => ({ name: r.name, kind: r.kind, config: fromJson(r.config), createdAt: r.created_at }));
    },

    /** Creates a provider with key version 1 (`keyRef` made by its key server). */
    createProvider: (p: { name: string; keyServer: string; primaryKeyId: string; keyRef: string; at: number }): Promise<KeyProvider> =>
      ctx.transaction(async (tx) => {
        const at = p.at;
        const row: KeyProvidersTable = { name: p.name, key_server: p.keyServer, primary_key_id: p.primaryKeyId, current_version: 1, created_at: at, disabled_at: null };
        await insertOrConflict(tx.db.insertInto("key_providers").values(row).execute(), `key provider ${p.name} exists`, `key server ${p.keyServer} not found`);
        await tx.db.insertInto("key_versions").values({ provider_name: p.name, version: 1, key_ref: p.keyRef, created_at: at, retired_at: null }).execute();
        return toProvider(row);
      }),
    async getProvider(name: string): Promise<KeyProvider | undefined> {
      const r = await ctx.db.selectFrom("key_providers").selectAll().where("name", "=", name).executeTakeFirst();
      return r ? toProvider(r) : undefined;
    },
    async listProviders(): Promise<KeyProvider[]> {
      return (await ctx.db.selectFrom("key_providers").selectAll().orderBy("name").execute()).map(toProvider);
    },
    async setProviderEnabled(name: string, enabled: boolean, at: number): Promise<void> {
      if (affected(await ctx.db.updateTable("key_providers").set({ disabled_at: enabled ? null : at }).where("name", "=", name).executeTakeFirst()) === 0) throw notFound(`key provider ${name}`);
    },
    /** Adds version current+1 and makes it current (new encryptions use it; old versions still decrypt until retired). */
    rotate: (name: string, keyRef: string, at: number): Promise<KeyVersion> =>
      ctx.transaction(async (tx) => {
        const p = await forUpdate(tx, tx.db.selectFrom("key_providers").selectAll().where("name", "=", name)).executeTakeFirst();
        if (!p) throw notFound(`key provider ${name}`);
        const row: KeyVersionsTable = { provider_name: name, version: p.current_version + 1, key_ref: keyRef, created_at: at, retired_at: null };
        await insertOrConflict(tx.db.insertInto("key_versions").values(row).execute(), `key version ${row.version} of ${name} exists`);
        await tx.db.updateTable("key_providers").set({ current_version: row.version }).where("name", "=", name).execute();
        return toVersion(row);
      }),
    async getVersion(providerName: string, version: number): Promise<KeyVersion | undefined> {
      const r = await ctx.db.selectFrom("key_versions").selectAll().where("provider_name", "=", providerName).where("version", "=", version).executeTakeFirst();
      return r ? toVersion(r) : undefined;
    },
    async listVersions(providerName: string): Promise<KeyVersion[]> {
      return (await ctx.db.selectFrom("key_versions").selectAll().where("provider_name", "=", providerName).orderBy("version").execute()).map(toVersion);
    },
    /** Retires an old version (it no longer decrypts); the current version cannot be retired. */
    retireVersion: (providerName: string, version: number, at: number): Promise<boolean> =>
      ctx.transaction(async (tx) => {
        const p = await forUpdate(tx, tx.db.selectFrom("key_providers").select("current_version").where("name", "=", providerName)).executeTakeFirst();
        if (!p) throw notFound(`key provider ${providerName}`);
        if (p.current_version === version) throw new TpmTrustError("ERR_CONFLICT", "the current key version cannot be retired; rotate first");
        const r = await tx.db
          .updateTable("key_versions")
          .set({ retired_at: at })
          .where("provider_name", "=", providerName)
          .where("version", "=", version)
          .where("retired_at", "is", null)
          .executeTakeFirst();
        return affected(r) > 0;
      }),

    /** Creates or replaces a cluster. */
    async putCluster(c: { name: string; selector: ClusterSelector; providers: string[]; at: number }): Promise<Cluster> {
      const at = c.at;
      const fields = { selector: toJson(c.selector), providers: toJson(c.providers), updated_at: at };
      const r = await ctx.db
        .insertInto("clusters")
        .values({ name: c.name, ...fields, created_at: at })
        .onConflict((oc) => oc.column("name").doUpdateSet(fields))
        .returningAll()
        .executeTakeFirstOrThrow();
      return toCluster(r);
    },
    async getCluster(name: string): Promise<Cluster | undefined> {
      const r = await ctx.db.selectFrom("clusters").selectAll().where("name", "=", name).executeTakeFirst();
      return r ? toCluster(r) : undefined;
    },
    async listClusters(): Promise<Cluster[]> {
      return (await ctx.db.selectFrom("clusters").selectAll().orderBy("name").execute()).map(toCluster);
    },
    async removeCluster(name: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("clusters").where("name", "=", name).executeTakeFirst()) > 0;
    },
  };
}
