/**
 * The built-in local key store (the embedded default). Primary keys are random AES-256 keys kept
 * only wrapped: AES-256-GCM under a master key, in the key version's reference in the database.
 * The master key comes from an environment variable (base64 of 32 bytes) or from a file with mode
 * 0600, created on first use; a file that group or others may read is refused. Master key files
 * live in the key directory (key-dir.ts: $TPMTRUST_KEY_DIR, else the database's folder): a path
 * outside it is refused before anything touches the disk, so an admin's setting cannot probe or
 * create files elsewhere.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { TpmTrustError } from "../errors.js";
import { confinedPath, ENV_KEY_DIR, openConfined, type KeyDirContext } from "./key-dir.js";
import type { KeyRef, KeyServer, KeyServerKind } from "./server.js";

export const MASTER_KEY_ENV = "TPMTRUST_MASTER_KEY";
export const DEFAULT_MASTER_KEY_FILE = "master.key";
const SETTING = "masterKeyFile";

export type LocalConfig = { masterKeyEnv: string } | { masterKeyFile: string };

const IV = 12;
const TAG = 16;
const KEY = 32;
const REF_PREFIX = "local1";
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const ioError = (message: string, details?: Record<string, unknown>) => new TpmTrustError("ERR_IO", message, details);

function decodeMasterKey(text: string, where: string): Buffer {
  const t = text.trim();
  const key = /^[A-Za-z0-9+/]{43}=$/.test(t) ? Buffer.from(t, "base64") : undefined;
  if (!key || key.length !== KEY) throw ioError(`${where} must hold the base64 of 32 random bytes (openssl rand -base64 32)`, { where });
  return key;
}

/** Creates the master key file (0600, in a 0700 directory) unless it exists; never overwrites. */
function createMasterKeyFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return;
    throw ioError(`cannot create the master key file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
  try {
    writeSync(fd, randomBytes(KEY).toString("base64") + "\n");
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o600);
}

/** Reads the master key a local key server is configured with; creates the file on first use. */
export function readMasterKey(cfg: LocalConfig, ctx: KeyDirContext = ENV_KEY_DIR): Buffer {
  if ("masterKeyEnv" in cfg) {
    const v = process.env[cfg.masterKeyEnv];
    if (v === undefined || v === "") throw ioError(`the master key variable ${cfg.masterKeyEnv} is not set`, { env: cfg.masterKeyEnv });
    return decodeMasterKey(v, `$${cfg.masterKeyEnv}`);
  }
  const path = confinedPath(ctx, cfg.masterKeyFile, SETTING);
  createMasterKeyFile(path);
  const fd = openConfined(ctx, path, SETTING, "the master key file");
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw ioError(`the master key file ${path} is not a regular file`, { path });
    if (st.mode & 0o077) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
      throw ioError(`the master key file ${path} has mode ${mode}: group or others may read it; chmod 600 it (and consider the key exposed)`, { path, mode });
    }
    return decodeMasterKey(readFileSync(fd, "utf8"), path);
  } finally {
    closeSync(fd);
  }
}

function gcmSeal(key: KeyObject, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV);
  const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG }).setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([iv, ct, c.getAuthTag()]);
}

/** Opens iv ‖ ciphertext ‖ tag; undefined when it does not authenticate. */
function gcmOpen(key: KeyObject, sealed: Buffer, aad: Buffer): Buffer | undefined {
  if (sealed.length < IV + TAG) return undefined;
  const d = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, IV), { authTagLength: TAG }).setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    return Buffer.concat([d.update(sealed.subarray(IV, sealed.length - TAG)), d.final()]);
  } catch {
    return undefined;
  }
}

/** What a wrapped primary key is bound to: its primary key id and a random id of its own. */
const wrapAad = (keyId: string, id: string) => Buffer.from(`tpmtrust/local-key/v1\0${keyId}\0${id}`, "utf8");

class LocalKeyServer implements KeyServer {
  readonly kind = "local";
  private master: KeyObject | undefined;
  private readonly keys = new Map<string, KeyObject>();

  constructor(
    private readonly cfg: LocalConfig,
    private readonly ctx: KeyDirContext,
  ) {}

  private masterKey(): KeyObject {
    if (!this.master) {
      const raw = readMasterKey(this.cfg, this.ctx);
      this.master = createSecretKey(raw);
      raw.fill(0);
    }
    return this.master;
  }

  async check(): Promise<void> {
    this.masterKey();
  }

  async createKey(keyId: string): Promise<string> {
    const id = randomBytes(8).toString("hex");
    const key = randomBytes(KEY);
    try {
      return `${REF_PREFIX}.${id}.${gcmSeal(this.masterKey(), key, wrapAad(keyId, id)).toString("base64url")}`;
    } finally {
      key.fill(0);
    }
  }

  /** The primary key of a version, unwrapped once and kept as a KeyObject. */
  private key(k: KeyRef): KeyObject {
    const cacheKey = `${k.keyId}\0${k.ref}`;
    const cached = this.keys.get(cacheKey);
    if (cached) return cached;
    const [prefix, id, wrapped, ...rest] = k.ref.split(".");
    if (prefix !== REF_PREFIX || !id || !wrapped || rest.length) throw ioError(`key version ${k.version} of ${k.keyId} is not a local key reference`);
    const raw = gcmOpen(this.masterKey(), Buffer.from(wrapped, "base64url"), wrapAad(k.keyId, id));
    if (!raw || raw.length !== KEY) throw ioError(`the master key does not unwrap key version ${k.version} of ${k.keyId}: wrong master key?`, { keyId: k.keyId, version: k.version });
    const key = createSecretKey(raw);
    raw.fill(0);
    this.keys.set(cacheKey, key);
    return key;
  }

  async encrypt(k: KeyRef, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    return gcmSeal(this.key(k), plaintext, aad);
  }

  async decrypt(k: KeyRef, sealed: Buffer, aad: Buffer): Promise<Buffer> {
    const pt = gcmOpen(this.key(k), sealed, aad);
    if (!pt) throw new TpmTrustError("ERR_DECRYPT_FAILED", "the ciphertext does not authenticate under this key version and context");
    return pt;
  }

  async randomBytes(n: number): Promise<Buffer> {
    return randomBytes(n);
  }

  async close(): Promise<void> {
    this.keys.clear();
    this.master = undefined;
  }
}

function configure(config: Record<string, unknown>, ctx: KeyDirContext): LocalConfig {
  const { masterKeyEnv, masterKeyFile, ...rest } = config;
  const extra = Object.keys(rest);
  if (extra.length) throw new TpmTrustError("ERR_VALIDATION", `a local key server has no setting ${extra.join(", ")} (only masterKeyEnv or masterKeyFile)`);
  if (masterKeyEnv !== undefined && masterKeyFile !== undefined) throw new TpmTrustError("ERR_VALIDATION", "give masterKeyEnv or masterKeyFile, not both");
  if (masterKeyEnv !== undefined) {
    if (typeof masterKeyEnv !== "string" || !ENV_NAME.test(masterKeyEnv)) throw new TpmTrustError("ERR_VALIDATION", "masterKeyEnv must be an environment variable name");
    return { masterKeyEnv };
  }
  if (masterKeyFile !== undefined) {
    if (typeof masterKeyFile !== "string" || masterKeyFile === "") throw new TpmTrustError("ERR_VALIDATION", "masterKeyFile must be a path");
    return { masterKeyFile: confinedPath(ctx, masterKeyFile, SETTING) };
  }
  // the default: the environment variable when this process has it, else master.key in the key directory
  return process.env[MASTER_KEY_ENV] ? { masterKeyEnv: MASTER_KEY_ENV } : { masterKeyFile: confinedPath(ctx, DEFAULT_MASTER_KEY_FILE, SETTING) };
}

export const LOCAL: KeyServerKind = {
  kind: "local",
  description: `built-in key store: AES-256 keys wrapped by a master key from $${MASTER_KEY_ENV} or a 0600 file (default ${DEFAULT_MASTER_KEY_FILE} in the key directory, created on first use)`,
  configure: (config, ctx = ENV_KEY_DIR) => configure(config, ctx),
  open: (config, ctx = ENV_KEY_DIR) => new LocalKeyServer(configure(config, ctx), ctx),
};
