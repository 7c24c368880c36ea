/**
 * Who may use a key provider: a host that presents a currently valid attestation token (signature,
 * expiry, and its record: issued here, not revoked), is enabled and its EK still trusted under its
 * policy version (trust withdrawn after the token was issued counts at once), is healthy now (not merely when the token was
 * issued: a host past its attestation deadline counts as unhealthy before the sweeper marks it),
 * and belongs to a cluster that allows the provider, which must be enabled. Every denial is
 * audited with its code.
 */
import { verifyAttestationToken } from "../tokens/tokens.js";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import type { Host, KeyProvider, KeyServer as KeyServerRecord, Store } from "../store/index.js";
import { requireHostTrusted } from "../trust/host-trust.js";
import { clustersAllowing } from "./clusters.js";

export type KeyOperation = "encrypt" | "decrypt" | "data-key" | "release";

export interface HostGrant {
  host: Host;
  provider: KeyProvider;
  /** the provider's key server */
  keyServer: KeyServerRecord;
  /** the clusters that allow it */
  clusters: string[];
  /** the token's jti, for the audit */
  jti: string;
  /** the audit actor */
  actor: string;
}

export interface AuthorizeInput {
  /** the bearer token, if the request carried one */
  token: string | undefined;
  provider: string;
  operation: KeyOperation;
  now: number;
  /** `iss` the service's tokens carry */
  issuer?: string;
}

async function decide(store: Store, i: AuthorizeInput, who: { actor: string }): Promise<HostGrant> {
  if (!i.token) throw new TpmTrustError("ERR_UNAUTHENTICATED", "key operations need the host's attestation token (Authorization: Bearer <token>)");
  const { record } = await verifyAttestationToken(store, i.token, i.now, { issuer: i.issuer });
  who.actor = `host:${record.hostName}`;
  const host = await store.hosts.get(record.hostName);
  if (!host) throw new TpmTrustError("ERR_TOKEN_INVALID", `host ${record.hostName} is no longer registered`);
  await requireHostTrusted(store, host, i.now);
  if (host.health !== "healthy") throw new TpmTrustError("ERR_HOST_UNHEALTHY", `host ${host.name} is ${host.health}${host.healthReason ? ` (${host.healthReason})` : ""}`, { health: host.health, reason: host.healthReason });
  if (host.deadlineAt !== null && i.now > host.deadlineAt) {
    throw new TpmTrustError("ERR_HOST_UNHEALTHY", `host ${host.name} has not attested since ${new Date(host.lastAttestationAt ?? 0).toISOString()} (deadline passed)`, { reason: "ERR_HOST_SILENT" });
  }
  const clusters = clustersAllowing(await store.keys.listClusters(), host, i.provider);
  if (clusters.length === 0) throw new TpmTrustError("ERR_FORBIDDEN", `host ${host.name} is in no trusted cluster that may use key provider ${i.provider}`);
  const provider = await store.keys.getProvider(i.provider);
  if (!provider) throw new TpmTrustError("ERR_NOT_FOUND", `no key provider named ${JSON.stringify(i.provider)}`);
  if (provider.disabledAt !== null) throw new TpmTrustError("ERR_DISABLED", `key provider ${provider.name} is disabled`);
  const keyServer = await store.keys.getServer(provider.keyServer);
  if (!keyServer) throw new TpmTrustError("ERR_INTERNAL", `key server ${provider.keyServer} of provider ${provider.name} is missing`);
  return { host, provider, keyServer, clusters, jti: record.jti, actor: who.actor };
}

/** Authorises a host's key operation or throws (after auditing) the reason it may not. */
export async function authorizeHost(store: Store, i: AuthorizeInput): Promise<HostGrant> {
  const who = { actor: "anonymous" };
  try {
    return await decide(store, i, who);
  } catch (e) {
    const code = isTpmTrustError(e) ? e.code : "ERR_INTERNAL";
    await store.audit.append({ actor: who.actor, action: `keys.${i.operation}`, subject: i.provider, outcome: "denied", details: { code, message: (e as Error).message }, at: i.now });
    throw e;
  }
}
