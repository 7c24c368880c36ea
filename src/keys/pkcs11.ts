/**
 * PKCS#11 key servers (HSMs, smart cards, SoftHSM) through pkcs11js. Primary keys are AES-256 token
 * objects generated inside the token (sensitive, not extractable); encryption is CKM_AES_GCM inside
 * the token with a 96-bit IV from the token's generator. A version's reference is its CKA_ID.
 *
 * Settings: the module path (in a module folder or the key directory), the token (by label or slot
 * index), and where the user PIN is: an environment variable or a file (mode 0600) in the key
 * directory (key-dir.ts). Calls are synchronous: one session per key server,
 * never interleaved, and each GCM call is microseconds on SoftHSM; a slow network HSM would want a
 * session pool here.
 */
import { closeSync, fstatSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Pkcs11Types from "pkcs11js";
import { TpmTrustError } from "../errors.js";
import { confinedModule, confinedPath, ENV_KEY_DIR, openConfined, realModule, type KeyDirContext } from "./key-dir.js";
import type { KeyRef, KeyServer, KeyServerKind } from "./server.js";

type Pkcs11Module = typeof Pkcs11Types;
type Handle = Buffer;

export interface Pkcs11Config {
  /** path of the PKCS#11 module in a module folder or the key directory, e.g. /usr/lib/softhsm/libsofthsm2.so */
  module: string;
  /** the token by its label … */
  tokenLabel?: string;
  /** … or by the index of its slot in the list of slots with a token */
  slot?: number;
  /** the user PIN: from this environment variable … */
  pinEnv?: string;
  /** … or from this file (mode 0600, one line) inside the key directory */
  pinFile?: string;
}

const IV = 12;
const TAG = 16;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const ioError = (message: string, details?: Record<string, unknown>) => new TpmTrustError("ERR_IO", message, details);

let binding: Pkcs11Module | undefined;
/** pkcs11js is loaded on first use, so installations without an HSM never load the native module. */
function pkcs11(): Pkcs11Module {
  binding ??= createRequire(import.meta.url)("pkcs11js") as Pkcs11Module;
  return binding;
}

/** A PKCS#11 error as a TpmTrustError that names the call and the CKR_ value. */
function hsmError(e: unknown, what: string): TpmTrustError {
  const err = e as { message?: string; code?: number; method?: string };
  return ioError(`PKCS#11 ${what} failed: ${err.message ?? String(e)}`, { ...(err.code !== undefined ? { ckr: err.code } : {}), ...(err.method ? { method: err.method } : {}) });
}

// One loaded and initialised library per module path per process (C_Initialize may run only once).
const libraries = new Map<string, { lib: Pkcs11Types.PKCS11; users: number }>();

function acquire(path: string, ctx: KeyDirContext): Pkcs11Types.PKCS11 {
  const have = libraries.get(path);
  if (have) {
    have.users++;
    return have.lib;
  }
  const real = realModule(ctx, path);
  const m = pkcs11();
  const lib = new m.PKCS11();
  try {
    lib.load(real);
  } catch (e) {
    throw ioError(`cannot load the PKCS#11 module ${path}: ${(e as Error).message}`, { module: path });
  }
  try {
    lib.C_Initialize();
  } catch (e) {
    if ((e as { code?: number }).code !== m.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw hsmError(e, "C_Initialize");
  }
  libraries.set(path, { lib, users: 1 });
  return lib;
}

function releaseLibrary(path: string): void {
  const have = libraries.get(path);
  if (!have || --have.users > 0) return;
  libraries.delete(path);
  try {
    have.lib.C_Finalize();
  } catch {
    /* finalising at shutdown: nothing left to do */
  }
}

/** A token label or slot description as a string: PKCS#11 pads fixed fields with blanks (SoftHSM with NULs). */
const fixed = (s: string) => s.replace(/[\0 ]+$/, "");

function readPin(cfg: Pkcs11Config, ctx: KeyDirContext): string {
  if (cfg.pinEnv) {
    const v = process.env[cfg.pinEnv];
    if (v === undefined || v === "") throw ioError(`the PIN variable ${cfg.pinEnv} is not set`, { env: cfg.pinEnv });
    return v;
  }
  const path = confinedPath(ctx, cfg.pinFile!, "pinFile");
  const fd = openConfined(ctx, path, "pinFile", "the PIN file");
  try {
    if (fstatSync(fd).mode & 0o077) throw ioError(`the PIN file ${path} may be read by group or others; chmod 600 it`, { path });
    const pin = readFileSync(fd, "utf8").replace(/\r?\n$/, "");
    if (!pin) throw ioError(`the PIN file ${path} is empty`, { path });
    return pin;
  } finally {
    closeSync(fd);
  }
}

class Pkcs11KeyServer implements KeyServer {
  readonly kind = "pkcs11";
  private lib: Pkcs11Types.PKCS11 | undefined;
  private session: Handle | undefined;
  private readonly handles = new Map<string, Handle>();

  constructor(
    private readonly cfg: Pkcs11Config,
    private readonly ctx: KeyDirContext,
  ) {}

  /** The logged-in session, opened on first use. */
  private open(): { lib: Pkcs11Types.PKCS11; session: Handle; m: Pkcs11Module } {
    const m = pkcs11();
    if (this.lib && this.session) return { lib: this.lib, session: this.session, m };
    const lib = acquire(this.cfg.module, this.ctx);
    try {
      const slots = lib.C_GetSlotList(true);
      let slot: Handle | undefined;
      if (this.cfg.tokenLabel !== undefined) slot = slots.find((s) => fixed(lib.C_GetTokenInfo(s).label) === this.cfg.tokenLabel);
      else slot = slots[this.cfg.slot ?? 0];
      if (!slot) {
        const labels = slots.map((s) => fixed(lib.C_GetTokenInfo(s).label));
        throw ioError(`no PKCS#11 token ${this.cfg.tokenLabel !== undefined ? `labelled ${JSON.stringify(this.cfg.tokenLabel)}` : `in slot index ${this.cfg.slot}`} (tokens: ${labels.map((l) => JSON.stringify(l)).join(", ") || "none"})`);
      }
      const session = lib.C_OpenSession(slot, m.CKF_SERIAL_SESSION | m.CKF_RW_SESSION);
      try {
        lib.C_Login(session, m.CKU_USER, readPin(this.cfg, this.ctx));
      } catch (e) {
        if ((e as { code?: number }).code !== m.CKR_USER_ALREADY_LOGGED_IN) {
          lib.C_CloseSession(session);
          throw e instanceof TpmTrustError ? e : hsmError(e, "C_Login");
        }
      }
      this.lib = lib;
      this.session = session;
      return { lib, session, m };
    } catch (e) {
      releaseLibrary(this.cfg.module);
      throw e instanceof TpmTrustError ? e : hsmError(e, "opening the token");
    }
  }

  async check(): Promise<void> {
    this.open();
  }

  async createKey(keyId: string): Promise<string> {
    const { lib, session, m } = this.open();
    const id = this.random(16);
    try {
      lib.C_GenerateKey(session, { mechanism: m.CKM_AES_KEY_GEN }, [
        { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
        { type: m.CKA_KEY_TYPE, value: m.CKK_AES },
        { type: m.CKA_VALUE_LEN, value: 32 },
        { type: m.CKA_TOKEN, value: true },
        { type: m.CKA_PRIVATE, value: true },
        { type: m.CKA_SENSITIVE, value: true },
        { type: m.CKA_EXTRACTABLE, value: false },
        { type: m.CKA_ENCRYPT, value: true },
        { type: m.CKA_DECRYPT, value: true },
        { type: m.CKA_WRAP, value: false },
        { type: m.CKA_UNWRAP, value: false },
        { type: m.CKA_LABEL, value: keyId },
        { type: m.CKA_ID, value: id },
      ]);
    } catch (e) {
      throw hsmError(e, "C_GenerateKey(CKM_AES_KEY_GEN)");
    }
    return `id:${id.toString("hex")}`;
  }

  /** Secret-key objects matching `template`, at most `max`. */
  private find(template: Pkcs11Types.Template, max: number): Handle[] {
    const { lib, session, m } = this.open();
    try {
      lib.C_FindObjectsInit(session, [{ type: m.CKA_CLASS, value: m.CKO_SECRET_KEY }, ...template]);
      try {
        return lib.C_FindObjects(session, max);
      } finally {
        lib.C_FindObjectsFinal(session);
      }
    } catch (e) {
      throw hsmError(e, "C_FindObjects");
    }
  }

  /**
   * A secret key the token already holds under `keyId`: by CKA_LABEL, else (hex) by CKA_ID. It must be
   * an AES-256 key that is sensitive, not extractable, may encrypt and decrypt, and has a CKA_ID.
   */
  async adoptKey(keyId: string): Promise<string | undefined> {
    const { lib, session, m } = this.open();
    let found = this.find([{ type: m.CKA_LABEL, value: keyId }], 2);
    if (found.length === 0 && /^(?:[0-9a-fA-F]{2}){1,64}$/.test(keyId)) found = this.find([{ type: m.CKA_ID, value: Buffer.from(keyId, "hex") }], 2);
    if (found.length === 0) return undefined;
    if (found.length > 1) throw new TpmTrustError("ERR_CONFLICT", `the token holds several secret keys labelled ${keyId}; give the CKA_ID (hex) of one`, { keyId });
    const unsuitable = (why: string) => new TpmTrustError("ERR_KEY_UNSUITABLE", `the PKCS#11 key ${keyId} cannot be a primary key: ${why}`, { keyId, reason: why });
    let a: Pkcs11Types.Template;
    try {
      a = lib.C_GetAttributeValue(session, found[0], [
        { type: m.CKA_KEY_TYPE },
        { type: m.CKA_VALUE_LEN },
        { type: m.CKA_SENSITIVE },
        { type: m.CKA_EXTRACTABLE },
        { type: m.CKA_ENCRYPT },
        { type: m.CKA_DECRYPT },
        { type: m.CKA_ID },
      ]);
    } catch (e) {
      throw hsmError(e, "C_GetAttributeValue");
    }
    const ulong = (b: Buffer) => (b.length === 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0));
    const flag = (b: Buffer) => b.length > 0 && b[0] !== 0;
    const [type, len, sensitive, extractable, encrypt, decrypt, id] = a.map((x) => x.value as Buffer);
    if (ulong(type) !== m.CKK_AES) throw unsuitable("it is not an AES key");
    if (ulong(len) !== 32) throw unsuitable(`it has ${ulong(len) * 8} bits, not 256`);
    if (flag(extractable)) throw unsuitable("it is extractable (CKA_EXTRACTABLE)");
    if (!flag(sensitive)) throw unsuitable("it is not sensitive (CKA_SENSITIVE)");
    if (!flag(encrypt) || !flag(decrypt)) throw unsuitable("it may not both encrypt and decrypt (CKA_ENCRYPT, CKA_DECRYPT)");
    if (!id?.length) throw unsuitable("it has no CKA_ID to find it by");
    return `id:${id.toString("hex")}`;
  }

  /** The token object of a version, found by its CKA_ID. */
  private key(k: KeyRef): Handle {
    const cached = this.handles.get(k.ref);
    if (cached) return cached;
    const m = /^id:((?:[0-9a-f]{2}){1,64})$/.exec(k.ref);
    if (!m) throw ioError(`key version ${k.version} of ${k.keyId} is not a PKCS#11 key reference`);
    const found = this.find([{ type: pkcs11().CKA_ID, value: Buffer.from(m[1], "hex") }], 2);
    if (found.length !== 1) throw ioError(`the token holds ${found.length === 0 ? "no" : "more than one"} key with CKA_ID ${m[1]} (version ${k.version} of ${k.keyId})`);
    this.handles.set(k.ref, found[0]);
    return found[0];
  }

  private random(n: number): Buffer {
    const { lib, session } = this.open();
    try {
      return lib.C_GenerateRandom(session, Buffer.alloc(n));
    } catch (e) {
      throw hsmError(e, "C_GenerateRandom");
    }
  }

  private gcm(iv: Buffer, aad: Buffer) {
    const m = pkcs11();
    return { mechanism: m.CKM_AES_GCM, parameter: { type: m.CK_PARAMS_GCM, iv, ivBits: IV * 8, aad, tagBits: TAG * 8 } };
  }

  async encrypt(k: KeyRef, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    const handle = this.key(k);
    const { lib, session } = this.open();
    const iv = this.random(IV);
    try {
      lib.C_EncryptInit(session, this.gcm(iv, aad), handle);
      return Buffer.concat([iv, lib.C_Encrypt(session, plaintext, Buffer.alloc(plaintext.length + TAG))]);
    } catch (e) {
      throw hsmError(e, "C_Encrypt(CKM_AES_GCM)");
    }
  }

  async decrypt(k: KeyRef, sealed: Buffer, aad: Buffer): Promise<Buffer> {
    const handle = this.key(k);
    if (sealed.length < IV + TAG) throw new TpmTrustError("ERR_DECRYPT_FAILED", "the ciphertext is shorter than an IV and a tag");
    const { lib, session } = this.open();
    try {
      lib.C_DecryptInit(session, this.gcm(sealed.subarray(0, IV), aad), handle);
    } catch (e) {
      throw hsmError(e, "C_DecryptInit(CKM_AES_GCM)");
    }
    try {
      return lib.C_Decrypt(session, sealed.subarray(IV), Buffer.alloc(sealed.length - IV));
    } catch (e) {
      // a tag that does not verify: CKR_ENCRYPTED_DATA_INVALID by the standard, CKR_GENERAL_ERROR from SoftHSM 2.6
      throw new TpmTrustError("ERR_DECRYPT_FAILED", "the ciphertext does not authenticate under this key version and context", { ckr: (e as { code?: number }).code });
    }
  }

  async randomBytes(n: number): Promise<Buffer> {
    return this.random(n);
  }

  async close(): Promise<void> {
    if (!this.lib || !this.session) return;
    try {
      this.lib.C_CloseSession(this.session);
    } catch {
      /* the token may be gone */
    }
    this.lib = undefined;
    this.session = undefined;
    this.handles.clear();
    releaseLibrary(this.cfg.module);
  }
}

function configure(config: Record<string, unknown>, ctx: KeyDirContext): Pkcs11Config {
  const bad = (m: string) => new TpmTrustError("ERR_VALIDATION", m);
  const { module, tokenLabel, slot, pinEnv, pinFile, ...rest } = config;
  if (Object.keys(rest).length) throw bad(`a pkcs11 key server has no setting ${Object.keys(rest).join(", ")}`);
  if (typeof module !== "string") throw bad("module must be the absolute path of a PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so");
  if ((tokenLabel === undefined) === (slot === undefined)) throw bad("give the token by tokenLabel or by slot (index), one of them");
  if (tokenLabel !== undefined && (typeof tokenLabel !== "string" || tokenLabel.length === 0 || tokenLabel.length > 32)) throw bad("tokenLabel has 1 to 32 characters");
  if (slot !== undefined && !(Number.isInteger(slot) && (slot as number) >= 0 && (slot as number) < 1024)) throw bad("slot must be a slot index (0, 1, …)");
  if ((pinEnv === undefined) === (pinFile === undefined)) throw bad("give the user PIN's place: pinEnv (a variable name) or pinFile (a path), one of them");
  if (pinEnv !== undefined && (typeof pinEnv !== "string" || !ENV_NAME.test(pinEnv))) throw bad("pinEnv must be an environment variable name");
  if (pinFile !== undefined && (typeof pinFile !== "string" || pinFile === "")) throw bad("pinFile must be a path");
  return {
    module: confinedModule(ctx, module),
    ...(tokenLabel !== undefined ? { tokenLabel: tokenLabel as string } : { slot: slot as number }),
    ...(pinEnv !== undefined ? { pinEnv: pinEnv as string } : { pinFile: confinedPath(ctx, pinFile as string, "pinFile") }),
  };
}

export const PKCS11: KeyServerKind = {
  kind: "pkcs11",
  description: "PKCS#11 token (HSM, SoftHSM): AES-256 keys generated and used inside the token (CKM_AES_GCM)",
  configure: (c, ctx = ENV_KEY_DIR) => ({ ...configure(c, ctx) }),
  open: (config, ctx = ENV_KEY_DIR) => new Pkcs11KeyServer(configure(config, ctx), ctx),
};
