/**
 * KMIP key servers (an external KMS over KMIP 1.4, mutual TLS). A primary key version is an AES-256
 * symmetric key created inside the KMS and never fetched; encryption is AES-256-GCM done by the KMS
 * (Encrypt/Decrypt with Authenticated Encryption Additional Data, KMIP 1.4 §4.29–4.30) with a
 * 96-bit random IV. A version's reference is `uid:` and the KMS's Unique Identifier.
 *
 * Settings: host, port, and the paths of the CA certificate, the client certificate and its key
 * (mode 0600), all three in the key directory (key-dir.ts). Tested against PyKMIP's server (Debian python3-pykmip).
 */
import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, readFileSync } from "node:fs";
import { TpmTrustError } from "../errors.js";
import {
  ALGORITHM_AES,
  BLOCK_CIPHER_MODE_GCM,
  NAME_TYPE_TEXT,
  OBJECT_TYPE_SYMMETRIC_KEY,
  OPERATION,
  REASON,
  REVOCATION_CESSATION_OF_OPERATION,
  STATE_ACTIVE,
  STATE_NAMES,
  STATE_PRE_ACTIVE,
  TAG,
  USAGE_DECRYPT,
  USAGE_ENCRYPT,
} from "./kmip/constants.js";
import { KmipClient, KmipOperationError } from "./kmip/client.js";
import { bytes, children, enumeration, field, int, required, struct, text, type TtlvItem } from "./kmip/ttlv.js";
import { confinedPath, ENV_KEY_DIR, openConfined, type KeyDirContext } from "./key-dir.js";
import type { KeyRef, KeyServer, KeyServerKind } from "./server.js";

export interface KmipConfig {
  host: string;
  port: number;
  /** PEM file of the CA that issued the KMS's certificate (in the key directory, like the next two) */
  ca: string;
  /** PEM files of this client's certificate and private key (the key mode 0600) */
  cert: string;
  key: string;
}

const IV = 12;
const TAG_BYTES = 16;
const HOST = /^[A-Za-z0-9.-]{1,253}$|^\[?[0-9A-Fa-f:.]+\]?$/;

const attribute = (name: string, value: TtlvItem) => struct(TAG.Attribute, text(TAG.AttributeName, name), { ...value, tag: TAG.AttributeValue });
const nameAttribute = (name: string) => attribute("Name", struct(0, text(TAG.NameValue, name), enumeration(TAG.NameType, NAME_TYPE_TEXT)));
const uidItem = (uid: string) => text(TAG.UniqueIdentifier, uid);
const gcm = () => struct(TAG.CryptographicParameters, enumeration(TAG.BlockCipherMode, BLOCK_CIPHER_MODE_GCM), enumeration(TAG.CryptographicAlgorithm, ALGORITHM_AES), int(TAG.TagLength, TAG_BYTES));

const unsuitable = (keyId: string, why: string) => new TpmTrustError("ERR_KEY_UNSUITABLE", `the KMIP key ${keyId} cannot be a primary key: ${why}`, { keyId, reason: why });

/** Reads the PEM file of setting `setting` from the key directory; the private key must not be readable by group or others. */
function readPem(ctx: KeyDirContext, path: string, setting: string, what: string, secret: boolean): Buffer {
  const fd = openConfined(ctx, confinedPath(ctx, path, setting), setting, `the KMIP ${what}`);
  try {
    if (secret && fstatSync(fd).mode & 0o077) throw new TpmTrustError("ERR_IO", `the KMIP client key ${path} may be read by group or others; chmod 600 it`, { path });
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

class KmipKeyServer implements KeyServer {
  readonly kind = "kmip";
  private client: KmipClient | undefined;
  /** false once the KMS said it has no RNG Retrieve (PyKMIP has none): then node's CSPRNG serves. */
  private kmsRandom = true;

  constructor(
    private readonly cfg: KmipConfig,
    private readonly ctx: KeyDirContext,
  ) {}

  private kms(): KmipClient {
    const pem = (setting: "ca" | "cert" | "key", what: string) => readPem(this.ctx, this.cfg[setting], setting, what, setting === "key");
    this.client ??= new KmipClient({ host: this.cfg.host, port: this.cfg.port, ca: pem("ca", "CA certificate"), cert: pem("cert", "client certificate"), key: pem("key", "client key") });
    return this.client;
  }

  async check(): Promise<void> {
    await this.kms().call(OPERATION.Locate, [nameAttribute("tpmtrust-connectivity-check")]);
  }

  /** Create (§4.1) an AES-256 key for encryption and decryption named `keyId`, then Activate (§4.19) it. */
  async createKey(keyId: string): Promise<string> {
    const created = await this.kms().call(OPERATION.Create, [
      enumeration(TAG.ObjectType, OBJECT_TYPE_SYMMETRIC_KEY),
      struct(
        TAG.TemplateAttribute,
        attribute("Cryptographic Algorithm", enumeration(0, ALGORITHM_AES)),
        attribute("Cryptographic Length", int(0, 256)),
        attribute("Cryptographic Usage Mask", int(0, USAGE_ENCRYPT | USAGE_DECRYPT)),
        nameAttribute(keyId),
      ),
    ]);
    const uid = required(created, TAG.UniqueIdentifier, "text");
    await this.kms().call(OPERATION.Activate, [uidItem(uid)]);
    return `uid:${uid}`;
  }

  /**
   * The key `keyId` names when the KMS already holds one: its Unique Identifier, or a Name that
   * Locate (§4.9) finds exactly once. It must be an active (or pre-active: activated here) AES-256
   * symmetric key allowed to encrypt and decrypt.
   */
  async adoptKey(keyId: string): Promise<string | undefined> {
    let uid: string | undefined;
    let attrs = await this.attributes(keyId);
    if (attrs) uid = keyId;
    else {
      const found = await this.kms().call(OPERATION.Locate, [nameAttribute(keyId)]);
      const uids = children(found, TAG.UniqueIdentifier).map((c) => (c.type === "text" ? c.value : ""));
      if (uids.length === 0) return undefined;
      if (uids.length > 1) throw new TpmTrustError("ERR_CONFLICT", `the KMIP server holds ${uids.length} keys named ${keyId}; give the Unique Identifier of one`, { keyId, uids });
      uid = uids[0];
      attrs = await this.attributes(uid);
      if (!attrs) return undefined;
    }
    const type = attrs.get("Object Type");
    if (type !== OBJECT_TYPE_SYMMETRIC_KEY) throw unsuitable(keyId, `it is not a symmetric key (Object Type ${type ?? "unknown"})`);
    if (attrs.get("Cryptographic Algorithm") !== ALGORITHM_AES) throw unsuitable(keyId, "it is not an AES key");
    if (attrs.get("Cryptographic Length") !== 256) throw unsuitable(keyId, `it has ${attrs.get("Cryptographic Length") ?? "an unknown number of"} bits, not 256`);
    const usage = Number(attrs.get("Cryptographic Usage Mask") ?? 0);
    if ((usage & (USAGE_ENCRYPT | USAGE_DECRYPT)) !== (USAGE_ENCRYPT | USAGE_DECRYPT)) throw unsuitable(keyId, "its Cryptographic Usage Mask does not allow both Encrypt and Decrypt");
    if (attrs.get("Extractable") === true) throw unsuitable(keyId, "it is extractable");
    const state = attrs.get("State");
    if (state === STATE_PRE_ACTIVE) await this.kms().call(OPERATION.Activate, [uidItem(uid)]);
    else if (state !== STATE_ACTIVE) throw unsuitable(keyId, `its state is ${STATE_NAMES[Number(state)] ?? state ?? "unknown"}, not Active`);
    return `uid:${uid}`;
  }

  /** Get Attributes (§4.11) of one object, by name; undefined when the KMS has no object with that identifier. */
  private async attributes(uid: string): Promise<Map<string, unknown> | undefined> {
    let res: TtlvItem;
    try {
      res = await this.kms().call(OPERATION.GetAttributes, [uidItem(uid)]);
    } catch (e) {
      if (e instanceof KmipOperationError && e.reason === REASON.ItemNotFound) return undefined;
      throw e;
    }
    const out = new Map<string, unknown>();
    for (const a of children(res, TAG.Attribute)) {
      const name = field(a, TAG.AttributeName, "text");
      const value = children(a, TAG.AttributeValue)[0];
      if (name && value && value.type !== "structure" && !out.has(name)) out.set(name, value.value);
    }
    return out;
  }

  private uid(k: KeyRef): string {
    const m = /^uid:(.{1,256})$/s.exec(k.ref);
    if (!m) throw new TpmTrustError("ERR_IO", `key version ${k.version} of ${k.keyId} is not a KMIP key reference`);
    return m[1];
  }

  async encrypt(k: KeyRef, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    const iv = randomBytes(IV);
    const res = await this.kms().call(OPERATION.Encrypt, [uidItem(this.uid(k)), gcm(), bytes(TAG.Data, plaintext), bytes(TAG.IvCounterNonce, iv), bytes(TAG.AuthenticatedEncryptionAdditionalData, aad)]);
    const ct = required(res, TAG.Data, "bytes");
    const tag = required(res, TAG.AuthenticatedEncryptionTag, "bytes");
    if (tag.length !== TAG_BYTES) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `the KMIP server returned a ${tag.length}-byte GCM tag`);
    return Buffer.concat([iv, ct, tag]);
  }

  async decrypt(k: KeyRef, sealed: Buffer, aad: Buffer): Promise<Buffer> {
    if (sealed.length < IV + TAG_BYTES) throw new TpmTrustError("ERR_DECRYPT_FAILED", "the sealed key is shorter than its IV and tag");
    const iv = sealed.subarray(0, IV);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    try {
      const res = await this.kms().call(OPERATION.Decrypt, [
        uidItem(this.uid(k)),
        gcm(),
        bytes(TAG.Data, sealed.subarray(IV, sealed.length - TAG_BYTES)),
        bytes(TAG.IvCounterNonce, iv),
        bytes(TAG.AuthenticatedEncryptionAdditionalData, aad),
        bytes(TAG.AuthenticatedEncryptionTag, tag),
      ]);
      return required(res, TAG.Data, "bytes");
    } catch (e) {
      // a tag that does not verify: Cryptographic Failure by the spec, General Failure from PyKMIP 0.10
      if (e instanceof KmipOperationError && (e.reason === REASON.CryptographicFailure || e.reason === REASON.GeneralFailure)) {
        throw new TpmTrustError("ERR_DECRYPT_FAILED", "the KMS could not authenticate the sealed key under this key version and context", { resultReason: e.reason });
      }
      throw e;
    }
  }

  /** RNG Retrieve (§4.35) where the KMS has it; otherwise node's CSPRNG. */
  async randomBytes(n: number): Promise<Buffer> {
    if (this.kmsRandom) {
      try {
        const data = required(await this.kms().call(OPERATION.RngRetrieve, [int(TAG.DataLength, n)]), TAG.Data, "bytes");
        if (data.length === n) return data;
      } catch (e) {
        if (!(e instanceof KmipOperationError)) throw e;
      }
      this.kmsRandom = false;
    }
    return randomBytes(n);
  }

  /** Revoke (§4.20, cessation of operation) and Destroy (§4.21): the version can never decrypt again. Repeating it is harmless. */
  async retireKey(k: KeyRef): Promise<void> {
    const uid = this.uid(k);
    const tolerate = (e: unknown) => {
      if (e instanceof KmipOperationError && e.reason !== REASON.PermissionDenied && e.reason !== REASON.AuthenticationNotSuccessful) return;
      throw e;
    };
    await this.kms()
      .call(OPERATION.Revoke, [uidItem(uid), struct(TAG.RevocationReason, enumeration(TAG.RevocationReasonCode, REVOCATION_CESSATION_OF_OPERATION))])
      .catch(tolerate);
    await this.kms().call(OPERATION.Destroy, [uidItem(uid)]).catch(tolerate);
  }

  async close(): Promise<void> {
    await this.client?.close();
    this.client = undefined;
  }
}

function configure(config: Record<string, unknown>, ctx: KeyDirContext): KmipConfig {
  const bad = (m: string) => new TpmTrustError("ERR_VALIDATION", `kmip key server: ${m}`);
  const { host, port, ca, cert, key, ...rest } = config;
  if (Object.keys(rest).length) throw bad(`unknown settings ${Object.keys(rest).join(", ")} (known: host, port, ca, cert, key)`);
  if (typeof host !== "string" || !HOST.test(host)) throw bad("host must be a host name or IP address");
  const p = typeof port === "string" && /^\d+$/.test(port) ? Number(port) : port;
  if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 65535) throw bad("port must be a number from 1 to 65535 (KMIP's is 5696)");
  const file = (name: string, v: unknown) => {
    if (typeof v !== "string" || v === "") throw bad(`${name} must be the path of a PEM file in the key directory`);
    return confinedPath(ctx, v, name);
  };
  return { host, port: p, ca: file("ca", ca), cert: file("cert", cert), key: file("key", key) };
}

export const KMIP: KeyServerKind = {
  kind: "kmip",
  description: "an external KMS over KMIP 1.4 (mutual TLS): keys are created and used inside it",
  configure: (c, ctx = ENV_KEY_DIR) => ({ ...configure(c, ctx) }),
  open: (config, ctx = ENV_KEY_DIR) => new KmipKeyServer(configure(config, ctx), ctx),
};
