/**
 * Where a CA private key lives, named by `ca_authorities.key_ref`:
 * - `file:<absolute path>`: a PKCS#8 PEM file with mode 0600 (the default);
 * - `keyserver:<server>:<keyId>:<ref>:<sealed>`: the PKCS#8 DER sealed (AES-256-GCM) by a key server
 *   of the key provider area (src/keys: the local master key, or a PKCS#11 HSM), with `ref` the key
 *   server's reference of the wrapping key (base64url) and `sealed` the blob (base64url). The key is
 *   unsealed in memory for signing: key servers hold symmetric keys only, so the CA key itself is
 *   never on disk in clear but is in the service's memory while it signs.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { TpmTrustError } from "../errors.js";
import { keyServerFor } from "../keys/kinds.js";
import type { Store } from "../store/index.js";
import { readKeyFile, writeKeyFile } from "./signing.js";

const aad = (keyId: string) => Buffer.from(`tpmtrust-ca-key\0${keyId}`);

async function keyServer(store: Store, name: string) {
  const rec = await store.keys.getServer(name);
  if (!rec) throw new TpmTrustError("ERR_NOT_FOUND", `no key server named ${JSON.stringify(name)} (tpmtrust keys servers add)`);
  return keyServerFor(store, rec);
}

/** Puts a new CA key into custody: a file in `keyDir`, or sealed by `keyServer`; returns its key_ref. */
export async function storeCaKey(store: Store, key: KeyObject, o: { label: string; keyDir: string; keyServer?: string }): Promise<string> {
  if (o.keyServer) {
    const ks = await keyServer(store, o.keyServer);
    const keyId = `tpmtrust-ca-${o.label}`;
    const ref = await ks.createKey(keyId);
    const sealed = await ks.encrypt({ keyId, version: 1, ref }, key.export({ type: "pkcs8", format: "der" }), aad(keyId));
    return ["keyserver", o.keyServer, keyId, Buffer.from(ref).toString("base64url"), sealed.toString("base64url")].join(":");
  }
  const path = join(o.keyDir, `${o.label}.key.pem`);
  if (!writeKeyFile(path, key)) throw new TpmTrustError("ERR_CONFLICT", `${path} already exists`, { path });
  return `file:${path}`;
}

/** The private key a key_ref names; ERR_IO when it cannot be read or unsealed. */
export async function loadCaKey(store: Store, keyRef: string, what: string): Promise<KeyObject> {
  if (keyRef.startsWith("file:")) return readKeyFile(keyRef.slice("file:".length), what);
  const parts = keyRef.split(":");
  if (parts[0] !== "keyserver" || parts.length !== 5) throw new TpmTrustError("ERR_IO", `${what}: key reference ${keyRef.slice(0, 40)}… is neither file: nor keyserver:`);
  const [, server, keyId, ref, sealed] = parts;
  const ks = await keyServer(store, server);
  let der: Buffer;
  try {
    der = await ks.decrypt({ keyId, version: 1, ref: Buffer.from(ref, "base64url").toString() }, Buffer.from(sealed, "base64url"), aad(keyId));
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `${what}: key server ${server} could not unseal it: ${(e as Error).message}`, { keyServer: server });
  }
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}
