/**
 * The kinds of key server tpmtrust can use, and the open key servers of a store. A new kind (a cloud
 * KMS) is one more entry here; see docs/keys.md.
 */
import { TpmTrustError } from "../errors.js";
import type { KeyServer as KeyServerRecord, Store } from "../store/index.js";
import { storeKeyDir } from "./key-dir.js";
import { KMIP } from "./kmip.js";
import { LOCAL } from "./local.js";
import { PKCS11 } from "./pkcs11.js";
import type { KeyServer, KeyServerKind } from "./server.js";

export const KEY_SERVER_KINDS: Readonly<Record<string, KeyServerKind>> = { local: LOCAL, pkcs11: PKCS11, kmip: KMIP };

export function keyServerKind(kind: string): KeyServerKind {
  const k = Object.hasOwn(KEY_SERVER_KINDS, kind) ? KEY_SERVER_KINDS[kind] : undefined;
  if (!k) throw new TpmTrustError("ERR_VALIDATION", `unknown key server kind ${JSON.stringify(kind)} (known: ${Object.keys(KEY_SERVER_KINDS).join(", ")})`);
  return k;
}

// Key servers stay open for the life of a store (an HSM session, an unwrapped-key cache); a record
// whose settings changed is reopened.
const open = new WeakMap<Store, Map<string, { settings: string; server: KeyServer }>>();

/** The open key server for a stored record. */
export function keyServerFor(store: Store, rec: KeyServerRecord): KeyServer {
  let byName = open.get(store);
  if (!byName) open.set(store, (byName = new Map()));
  const settings = `${rec.kind}\0${JSON.stringify(rec.config)}`;
  const have = byName.get(rec.name);
  if (have?.settings === settings) return have.server;
  if (have) void have.server.close();
  const server = keyServerKind(rec.kind).open(rec.config, storeKeyDir(store));
  byName.set(rec.name, { settings, server });
  return server;
}

/** Closes every key server opened for `store` (at shutdown, before the store closes). */
export async function closeKeyServers(store: Store): Promise<void> {
  const byName = open.get(store);
  open.delete(store);
  for (const { server } of byName?.values() ?? []) await server.close().catch(() => undefined);
}
