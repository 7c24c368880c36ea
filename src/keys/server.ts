/**
 * Key servers: where the primary keys of trusted key providers live and where they are used.
 * tpmtrust never holds a primary key in clear outside a key server; a provider's key version is
 * stored as the opaque reference its key server returned from `createKey` (an object id in an HSM,
 * a key wrapped by the local master key, a KMS key ARN …).
 *
 * Adding a kind (KMIP, a cloud KMS) is one file implementing `KeyServer` plus one entry in
 * `KEY_SERVER_KINDS` (src/keys/kinds.ts); nothing else changes.
 */

import type { KeyDirContext } from "./key-dir.js";

/** One version of a provider's primary key, as a key server sees it. */
export interface KeyRef {
  /** the provider's primary key id (a label, an alias) */
  keyId: string;
  version: number;
  /** what `createKey` returned for this version */
  ref: string;
}

export interface KeyServer {
  readonly kind: string;
  /** Makes a new AES-256 key for `keyId` inside the key server; returns the reference to store. */
  createKey(keyId: string): Promise<string>;
  /** AES-256-GCM inside the key server: returns an opaque sealed blob (IV, ciphertext and tag). */
  encrypt(key: KeyRef, plaintext: Buffer, aad: Buffer): Promise<Buffer>;
  /** Opens what `encrypt` sealed with the same AAD; ERR_DECRYPT_FAILED when it does not authenticate. */
  decrypt(key: KeyRef, sealed: Buffer, aad: Buffer): Promise<Buffer>;
  /**
   * The reference of a key the key server already holds under `keyId` (a label, a name, an
   * identifier), checked suitable (ERR_KEY_UNSUITABLE otherwise); undefined when it holds none.
   * A new provider adopts such a key instead of creating a second one with the same name.
   */
  adoptKey?(keyId: string): Promise<string | undefined>;
  /** Makes a retired version unusable inside the key server too (e.g. KMIP Revoke + Destroy). */
  retireKey?(key: KeyRef): Promise<void>;
  /** Random bytes from the key server's generator (data keys and released secrets come from it). */
  randomBytes(n: number): Promise<Buffer>;
  /** Checks that the key server is usable (master key readable, HSM token logged in). */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** A kind of key server: how its settings are checked and how it is opened. */
export interface KeyServerKind {
  kind: string;
  /** one line for `--help` and the API document */
  description: string;
  /**
   * Validates settings as an operator gave them and returns what is stored (paths made absolute,
   * defaults filled in). Settings never hold secrets in clear, only where to find them; files
   * must be in the key directory `ctx` names (default: $TPMTRUST_KEY_DIR).
   */
  configure(config: Record<string, unknown>, ctx?: KeyDirContext): Record<string, unknown>;
  open(config: Record<string, unknown>, ctx?: KeyDirContext): KeyServer;
}
