/**
 * Trusted clusters (admin only): sets of registered hosts, chosen by name, hardware class or tag,
 * and the key providers their hosts may use. A host belongs to every cluster one of whose
 * selectors names it, its hardware class, or one of its tags.
 */
import { TpmTrustError } from "../errors.js";
import type { Cluster, ClusterSelector, Host, Store } from "../store/index.js";
import type { Caller } from "./providers.js";

export const CLUSTER_NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,62}$";

export interface ClusterInput {
  name: string;
  hosts?: string[];
  hardwareClasses?: string[];
  tags?: string[];
  providers: string[];
}

const uniq = (xs: string[] | undefined): string[] | undefined => (xs && xs.length ? [...new Set(xs)].sort() : undefined);

/** Creates or replaces a cluster; its providers must exist and it must select something. */
export async function putCluster(store: Store, c: ClusterInput, caller: Caller): Promise<Cluster> {
  if (!new RegExp(CLUSTER_NAME_PATTERN).test(c.name)) throw new TpmTrustError("ERR_VALIDATION", `name must match ${CLUSTER_NAME_PATTERN}, got ${JSON.stringify(c.name)}`, { field: "name" });
  const selector: ClusterSelector = {};
  const hosts = uniq(c.hosts);
  const hardwareClasses = uniq(c.hardwareClasses);
  const tags = uniq(c.tags);
  if (hosts) selector.hosts = hosts;
  if (hardwareClasses) selector.hardwareClasses = hardwareClasses;
  if (tags) selector.tags = tags;
  if (!hosts && !hardwareClasses && !tags) throw new TpmTrustError("ERR_VALIDATION", "a cluster selects hosts by name, hardware class or tag: give at least one");
  const providers = uniq(c.providers) ?? [];
  for (const p of providers) if (!(await store.keys.getProvider(p))) throw new TpmTrustError("ERR_NOT_FOUND", `no key provider named ${JSON.stringify(p)}`);
  return store.transaction(async (tx) => {
    const existed = (await tx.keys.getCluster(c.name)) !== undefined;
    const cl = await tx.keys.putCluster({ name: c.name, selector, providers, at: caller.now });
    await tx.audit.append({ actor: caller.actor, action: existed ? "keys.cluster.replace" : "keys.cluster.add", subject: c.name, outcome: "success", details: { selector, providers }, at: caller.now });
    return cl;
  });
}

export async function getCluster(store: Store, name: string): Promise<Cluster> {
  const cl = await store.keys.getCluster(name);
  if (!cl) throw new TpmTrustError("ERR_NOT_FOUND", `no cluster named ${JSON.stringify(name)}`);
  return cl;
}

export const listClusters = (store: Store): Promise<Cluster[]> => store.keys.listClusters();

export async function removeCluster(store: Store, name: string, caller: Caller): Promise<void> {
  await store.transaction(async (tx) => {
    if (!(await tx.keys.removeCluster(name))) throw new TpmTrustError("ERR_NOT_FOUND", `no cluster named ${JSON.stringify(name)}`);
    await tx.audit.append({ actor: caller.actor, action: "keys.cluster.remove", subject: name, outcome: "success", at: caller.now });
  });
}

export function clusterSelects(cl: Cluster, h: Pick<Host, "name" | "hardwareClass" | "tags">): boolean {
  const s = cl.selector;
  return !!(s.hosts?.includes(h.name) || s.hardwareClasses?.includes(h.hardwareClass) || s.tags?.some((t) => h.tags.includes(t)));
}

/** The clusters that select the host and allow the provider. */
export function clustersAllowing(clusters: Cluster[], h: Pick<Host, "name" | "hardwareClass" | "tags">, provider: string): string[] {
  return clusters.filter((cl) => cl.providers.includes(provider) && clusterSelects(cl, h)).map((cl) => cl.name);
}
