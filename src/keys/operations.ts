/**
 * Key operations for authorised hosts (see authorize.ts): encrypt, decrypt and data keys.
 *
 *   encrypt:  plaintext → envelope sealed by the provider's current version, AAD = provider,
 *             version and the caller's context
 *   decrypt:  envelope → plaintext, by the version it names, unless that version is retired
 *   data-key: a fresh DEK from the key server's generator, returned in clear and wrapped (an
 *             envelope that /decrypt opens again)
 *
 * Every success is audited with the host, the version and the clusters that allowed it.
 */
import { TpmTrustError } from "../errors.js";
import type { KeyVersion, Store } from "../store/index.js";
import type { HostGrant, KeyOperation } from "./authorize.js";
import { decodeEnvelope, encodeEnvelope, envelopeAad } from "./envelope.js";
import { keyServerFor } from "./kinds.js";
import type { KeyRef, KeyServer } from "./server.js";

/** Largest plaintext `encrypt` takes (envelope encryption is for keys and small secrets). */
export const MAX_PLAINTEXT = 64 * 1024;
export const DATA_KEY_SIZES = { min: 16, max: 64, default: 32 } as const;

interface VersionKey {
  server: KeyServer;
  key: KeyRef;
}

/** The provider's key server. */
export const serverOf = (store: Store, g: HostGrant): KeyServer => keyServerFor(store, g.keyServer);

const versionKey = (store: Store, g: HostGrant, v: KeyVersion): VersionKey => ({ server: serverOf(store, g), key: { keyId: g.provider.primaryKeyId, version: v.version, ref: v.keyRef } });

async function audit(store: Store, g: HostGrant, op: KeyOperation, now: number, details: Record<string, unknown>): Promise<void> {
  await store.audit.append({ actor: g.actor, action: `keys.${op}`, subject: g.provider.name, outcome: "success", details: { host: g.host.name, clusters: g.clusters, jti: g.jti, ...details }, at: now });
}

/** Seals with the provider's current version; returns the envelope. */
export async function sealCurrent(store: Store, g: HostGrant, plaintext: Buffer, context?: Buffer): Promise<{ envelope: Buffer; version: number }> {
  const v = await store.keys.getVersion(g.provider.name, g.provider.currentVersion);
  if (!v) throw new TpmTrustError("ERR_INTERNAL", `current version ${g.provider.currentVersion} of ${g.provider.name} is missing`);
  const { server, key } = versionKey(store, g, v);
  const sealed = await server.encrypt(key, plaintext, envelopeAad(g.provider.name, v.version, context));
  return { envelope: encodeEnvelope({ provider: g.provider.name, version: v.version, sealed }), version: v.version };
}

/** Opens an envelope of this provider with the version it names. */
export async function openEnvelope(store: Store, g: HostGrant, envelope: Buffer, context?: Buffer): Promise<{ plaintext: Buffer; version: number }> {
  const e = decodeEnvelope(envelope);
  if (e.provider !== g.provider.name) throw new TpmTrustError("ERR_DECRYPT_FAILED", `the envelope was sealed by key provider ${e.provider}, not ${g.provider.name}`, { provider: e.provider });
  const v = await store.keys.getVersion(e.provider, e.version);
  if (!v) throw new TpmTrustError("ERR_DECRYPT_FAILED", `key provider ${e.provider} has no version ${e.version}`, { version: e.version });
  if (v.retiredAt !== null) throw new TpmTrustError("ERR_KEY_RETIRED", `version ${v.version} of key provider ${e.provider} was retired at ${new Date(v.retiredAt).toISOString()}`, { version: v.version });
  const { server, key } = versionKey(store, g, v);
  return { plaintext: await server.decrypt(key, e.sealed, envelopeAad(e.provider, e.version, context)), version: v.version };
}

function checkPlaintext(p: Buffer): void {
  if (p.length === 0 || p.length > MAX_PLAINTEXT) throw new TpmTrustError("ERR_VALIDATION", `plaintext must have 1 to ${MAX_PLAINTEXT} bytes, not ${p.length}`);
}

export function checkDataKeySize(size: number): void {
  if (!Number.isInteger(size) || size < DATA_KEY_SIZES.min || size > DATA_KEY_SIZES.max) throw new TpmTrustError("ERR_VALIDATION", `size must be ${DATA_KEY_SIZES.min} to ${DATA_KEY_SIZES.max} bytes, not ${size}`);
}

export async function encrypt(store: Store, g: HostGrant, o: { plaintext: Buffer; context?: Buffer; now: number }): Promise<{ ciphertext: Buffer; keyVersion: number }> {
  checkPlaintext(o.plaintext);
  const { envelope, version } = await sealCurrent(store, g, o.plaintext, o.context);
  await audit(store, g, "encrypt", o.now, { version, bytes: o.plaintext.length });
  return { ciphertext: envelope, keyVersion: version };
}

export async function decrypt(store: Store, g: HostGrant, o: { ciphertext: Buffer; context?: Buffer; now: number }): Promise<{ plaintext: Buffer; keyVersion: number }> {
  try {
    const { plaintext, version } = await openEnvelope(store, g, o.ciphertext, o.context);
    await audit(store, g, "decrypt", o.now, { version, bytes: plaintext.length });
    return { plaintext, keyVersion: version };
  } catch (e) {
    const code = e instanceof TpmTrustError ? e.code : "ERR_INTERNAL";
    await store.audit.append({ actor: g.actor, action: "keys.decrypt", subject: g.provider.name, outcome: "failure", details: { host: g.host.name, code }, at: o.now });
    throw e;
  }
}

/** A new data key: in clear for the host, and wrapped by the provider's current version. */
export async function dataKey(store: Store, g: HostGrant, o: { size?: number; context?: Buffer; now: number }): Promise<{ plaintext: Buffer; wrappedKey: Buffer; keyVersion: number }> {
  const size = o.size ?? DATA_KEY_SIZES.default;
  checkDataKeySize(size);
  const plaintext = await serverOf(store, g).randomBytes(size);
  const { envelope, version } = await sealCurrent(store, g, plaintext, o.context);
  await audit(store, g, "data-key", o.now, { version, size });
  return { plaintext, wrappedKey: envelope, keyVersion: version };
}
