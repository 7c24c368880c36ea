/**
 * Typed TPM 2.0 commands (Library Part 3, rev 1.59 section numbers) over a Transport.
 * Every handle that needs authorization takes an AuthSession (default: empty password).
 */
import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { HASH_ALGS, TPM_ALG, TPM_CAP, TPM_CC, TPM_PT, TPM_RH, TPM_SE, TPM_ST } from "../constants.js";
import { Reader, Writer } from "../marshal.js";
import { TpmRcError } from "../rc.js";
import {
  digestSize,
  objectName,
  pcrSelection,
  readTpm2bAttest,
  readTpm2bCreationData,
  readTpm2bNvPublic,
  readTpm2bPublic,
  readTpmlDigest,
  readTpmlPcrSelection,
  readTpmtSignature,
  selectedPcrs,
  writeTpm2bIdObject,
  writeTpm2bNvPublic,
  writeTpm2bPublic,
  writeTpmlPcrSelection,
  writeTpmtScheme,
  writeTpmtSymDefObject,
} from "../structures.js";
import type { Transport } from "../transport/transport.js";
import type { TpmsAttest, TpmsCreationData, TpmsIdObject, TpmsNvPublic, TpmsPcrSelection, TpmtPublic, TpmtScheme, TpmtSignature, TpmtSymDefObject } from "../types.js";
import { marshalCommand, unmarshalResponse, type CommandRequest, type ParsedResponse } from "./command.js";
import { password, PolicySession, type AuthSession } from "./session.js";

/** Part 2 §10.7 tickets (TPMT_TK_CREATION, TPMT_TK_AUTH, TPMT_TK_HASHCHECK). */
export interface TpmtTicket {
  tag: number;
  hierarchy: number;
  digest: Buffer;
}

/** Part 2 §11.1.15 TPMS_SENSITIVE_CREATE */
export interface SensitiveCreate {
  userAuth?: Uint8Array;
  data?: Uint8Array;
}

export interface CreateOptions {
  /** authorization of the parent / hierarchy (default: empty password) */
  auth?: AuthSession;
  sensitive?: SensitiveCreate;
  outsideInfo?: Uint8Array;
  creationPcrs?: TpmsPcrSelection[];
}

export interface CreationResult {
  public: TpmtPublic;
  /** the TPMT_PUBLIC bytes exactly as the TPM returned them */
  publicArea: Buffer;
  creationData: TpmsCreationData;
  creationHash: Buffer;
  creationTicket: TpmtTicket;
}

export interface CreatePrimaryResult extends CreationResult {
  handle: number;
  name: Buffer;
}

export interface CreateResult extends CreationResult {
  /** TPM2B_PRIVATE contents (without the size) */
  private: Buffer;
}

export interface ReadPublicResult {
  public: TpmtPublic;
  publicArea: Buffer;
  name: Buffer;
  qualifiedName: Buffer;
}

export interface AttestResult {
  /** the signed TPMS_ATTEST bytes exactly as the TPM returned them */
  attest: Buffer;
  attested: TpmsAttest;
  signature: TpmtSignature;
  /** the TPMT_SIGNATURE bytes as returned */
  signatureBytes: Buffer;
}

/** Part 2 §10.10 capability lists, discriminated by TPM_CAP. */
export type CapabilityData =
  | { capability: typeof TPM_CAP.ALGS; algs: { alg: number; attributes: number }[] }
  | { capability: typeof TPM_CAP.HANDLES; handles: number[] }
  | { capability: typeof TPM_CAP.COMMANDS; commands: number[] }
  | { capability: typeof TPM_CAP.PCRS; pcrs: TpmsPcrSelection[] }
  | { capability: typeof TPM_CAP.TPM_PROPERTIES; properties: { property: number; value: number }[] }
  | { capability: typeof TPM_CAP.ECC_CURVES; curves: number[] };

/** PCR values by bank (TPM_ALG_ID) then PCR index. */
export type PcrBankMap = Map<number, Map<number, Buffer>>;

export interface ClientOptions {
  /** randomness for nonceCaller (fixed only to replay recorded sessions) */
  random?: (n: number) => Buffer;
}

const MAX_LIST = 1024;
// Part 2 §6.6.3 warnings after which the same command may simply be sent again: TPM_RC_YIELDED,
// TPM_RC_TESTING, TPM_RC_RETRY.
const RETRYABLE = new Set([0x908, 0x90a, 0x922]);
const EMPTY = Buffer.alloc(0);
const NULL_SCHEME: TpmtScheme = { scheme: TPM_ALG.NULL };

/** Parameters shared by TPM2_CreatePrimary and TPM2_Create: inSensitive ‖ inPublic ‖ outsideInfo ‖ creationPCR. */
function creationParams(template: TpmtPublic, opts: CreateOptions): Buffer {
  const s = opts.sensitive ?? {};
  const w = new Writer().sized((i) => i.tpm2b(s.userAuth ?? EMPTY).tpm2b(s.data ?? EMPTY)); // Part 2 §11.1.16 TPM2B_SENSITIVE_CREATE
  writeTpm2bPublic(w, template);
  w.tpm2b(opts.outsideInfo ?? EMPTY);
  writeTpmlPcrSelection(w, opts.creationPcrs ?? []);
  return w.finish();
}
function readTicket(r: Reader, what: string): TpmtTicket {
  return { tag: r.u16(`${what}.tag`), hierarchy: r.u32(`${what}.hierarchy`), digest: r.tpm2b(`${what}.digest`, 64) };
}
function writeTicket(w: Writer, t: TpmtTicket): void {
  w.u16(t.tag).u32(t.hierarchy).tpm2b(t.digest);
}
function readPublicRaw(r: Reader): { public: TpmtPublic; publicArea: Buffer } {
  const start = r.offset + 2;
  const pub = readTpm2bPublic(r);
  return { public: pub, publicArea: Buffer.from(r.buf.subarray(start, r.offset)) };
}
function readCreation(r: Reader): Omit<CreationResult, "public" | "publicArea"> {
  return { creationData: readTpm2bCreationData(r), creationHash: r.tpm2b("creationHash", 64), creationTicket: readTicket(r, "creationTicket") };
}
function readAttest(r: Reader): AttestResult {
  const start = r.offset + 2;
  const attested = readTpm2bAttest(r);
  const attest = Buffer.from(r.buf.subarray(start, r.offset));
  const sigStart = r.offset;
  const signature = readTpmtSignature(r);
  return { attest, attested, signature, signatureBytes: Buffer.from(r.buf.subarray(sigStart, r.offset)) };
}
function list<T>(r: Reader, what: string, item: () => T): T[] {
  const at = r.offset;
  const n = r.u32(`${what}.count`);
  if (n > MAX_LIST) r.fail(`${what}.count`, `${n} exceeds ${MAX_LIST}`, at);
  return Array.from({ length: n }, item);
}

function usage(message: string, details?: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError("ERR_USAGE", message, details);
}

export class TpmClient {
  private readonly random: (n: number) => Buffer;
  private nvBufferMax: number | undefined;

  constructor(
    readonly transport: Transport,
    opts: ClientOptions = {},
  ) {
    this.random = opts.random ?? randomBytes;
  }

  /**
   * Sends one command with one AuthSession per authorized handle and parses the response's
   * parameter area with `parse`, which must consume it exactly. One-shot policy sessions that a
   * failed command leaves open are flushed.
   */
  async execute<T>(req: CommandRequest, auths: AuthSession[], parse: (r: Reader, handles: number[]) => T): Promise<T> {
    try {
      const out = await this.exchange(req, auths);
      out.auths.forEach((a, i) => auths[i].update(a));
      const r = new Reader(out.params, out.paramsOffset);
      const value = parse(r, out.handles);
      r.end(`${req.name} response parameters`);
      return value;
    } catch (e) {
      for (const a of auths) {
        if (a instanceof PolicySession && !a.continueSession) await this.flushContext(a.handle).catch(() => undefined);
      }
      throw e;
    }
  }

  /** Sends the command, again while the TPM answers with a retryable warning (up to 10 times). */
  private async exchange(req: CommandRequest, auths: AuthSession[]): Promise<ParsedResponse> {
    for (let attempt = 1; ; attempt++) {
      const resp = await this.transport.send(marshalCommand(req, auths.map((a) => a.authCommand(this.random))));
      try {
        return unmarshalResponse(resp, req.name, req.responseHandles ?? 0, auths.length);
      } catch (e) {
        if (!(e instanceof TpmRcError && RETRYABLE.has(e.rc.rc)) || attempt === 10) throw e;
        await new Promise((r) => setTimeout(r, 5 * attempt));
      }
    }
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  // ---- start-up, capabilities, randomness

  /** Part 3 §9.3 TPM2_Startup. Returns false if the TPM was already started (TPM_RC_INITIALIZE). */
  async startup(type: "clear" | "state" = "clear"): Promise<boolean> {
    const params = new Writer().u16(type === "clear" ? 0 : 1).finish();
    try {
      await this.execute({ name: "TPM2_Startup", code: TPM_CC.Startup, params }, [], () => undefined);
      return true;
    } catch (e) {
      if (e instanceof TpmRcError && e.rc.rc === 0x100) return false;
      throw e;
    }
  }

  /** Part 3 §30.2 TPM2_GetCapability */
  async getCapability(capability: number, property: number, propertyCount: number): Promise<{ moreData: boolean; data: CapabilityData }> {
    const params = new Writer().u32(capability).u32(property).u32(propertyCount).finish();
    return this.execute({ name: "TPM2_GetCapability", code: TPM_CC.GetCapability, params }, [], (r) => {
      const moreData = r.u8("moreData") === 1;
      const at = r.offset;
      const cap = r.u32("capabilityData.capability");
      if (cap !== capability) r.fail("capabilityData.capability", `asked for ${capability}, got ${cap}`, at);
      return { moreData, data: readCapability(r, cap) };
    });
  }

  /** TPM properties (TPM_CAP_TPM_PROPERTIES) from `first` on, following moreData. */
  async getProperties(first: number, count: number): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    let next = first;
    for (;;) {
      const { moreData, data } = await this.getCapability(TPM_CAP.TPM_PROPERTIES, next, first + count - next);
      if (data.capability !== TPM_CAP.TPM_PROPERTIES) break;
      for (const p of data.properties) if (p.property < first + count) out.set(p.property, p.value);
      const last = data.properties.at(-1)?.property;
      if (!moreData || last === undefined || last + 1 >= first + count) break;
      next = last + 1;
    }
    return out;
  }

  /** All handles from `first` within its handle type (TPM_CAP_HANDLES), following moreData. */
  async getHandles(first: number): Promise<number[]> {
    const type = first >>> 24;
    const out: number[] = [];
    let next = first;
    for (;;) {
      const { moreData, data } = await this.getCapability(TPM_CAP.HANDLES, next, 256);
      if (data.capability !== TPM_CAP.HANDLES) break;
      const mine = data.handles.filter((h) => h >>> 24 === type);
      out.push(...mine);
      if (!moreData || mine.length === 0) break;
      next = mine[mine.length - 1] + 1;
    }
    return out;
  }

  /** The allocated PCR banks (TPM_CAP_PCRS), banks with an empty selection left out. */
  async getPcrBanks(): Promise<TpmsPcrSelection[]> {
    const { data } = await this.getCapability(TPM_CAP.PCRS, 0, 1);
    return data.capability === TPM_CAP.PCRS ? data.pcrs.filter((s) => selectedPcrs(s).length > 0) : [];
  }

  /** Part 3 §16.1 TPM2_GetRandom, repeated until `n` bytes are collected. */
  async getRandom(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const params = new Writer().u16(Math.min(n - have, 64)).finish();
      const got = await this.execute({ name: "TPM2_GetRandom", code: TPM_CC.GetRandom, params }, [], (r) => r.tpm2b("randomBytes", 64));
      if (got.length === 0) throw new TpmTrustError("ERR_TPM_TRANSPORT", "TPM2_GetRandom returned no bytes");
      parts.push(got);
      have += got.length;
    }
    return Buffer.concat(parts).subarray(0, n);
  }

  // ---- objects

  /** Part 3 §24.1 TPM2_CreatePrimary under `hierarchy` (TPM_RH_OWNER / ENDORSEMENT / PLATFORM / NULL). */
  async createPrimary(hierarchy: number, template: TpmtPublic, opts: CreateOptions = {}): Promise<CreatePrimaryResult> {
    const req = { name: "TPM2_CreatePrimary", code: TPM_CC.CreatePrimary, handles: [hierarchy], params: creationParams(template, opts), responseHandles: 1 };
    return this.execute(req, [opts.auth ?? password()], (r, [handle]) => {
      const pub = readPublicRaw(r);
      const creation = readCreation(r);
      return { handle, ...pub, ...creation, name: r.tpm2b("name", 66) };
    });
  }

  /** Part 3 §12.1 TPM2_Create under a loaded parent. */
  async create(parent: number, template: TpmtPublic, opts: CreateOptions = {}): Promise<CreateResult> {
    const req = { name: "TPM2_Create", code: TPM_CC.Create, handles: [parent], params: creationParams(template, opts) };
    return this.execute(req, [opts.auth ?? password()], (r) => {
      const priv = r.tpm2b("outPrivate", 4096);
      return { private: priv, ...readPublicRaw(r), ...readCreation(r) };
    });
  }

  /** Part 3 §12.2 TPM2_Load. `priv` is the TPM2B_PRIVATE contents. */
  async load(parent: number, priv: Uint8Array, pub: TpmtPublic, opts: { auth?: AuthSession } = {}): Promise<{ handle: number; name: Buffer }> {
    const w = new Writer().tpm2b(priv);
    writeTpm2bPublic(w, pub);
    const req = { name: "TPM2_Load", code: TPM_CC.Load, handles: [parent], params: w.finish(), responseHandles: 1 };
    return this.execute(req, [opts.auth ?? password()], (r, [handle]) => ({ handle, name: r.tpm2b("name", 66) }));
  }

  /** Part 3 §13.3 TPM2_Import: returns the new TPM2B_PRIVATE contents, wrapped by `parent`. */
  async import(
    parent: number,
    args: { objectPublic: TpmtPublic; duplicate: Uint8Array; inSymSeed: Uint8Array; encryptionKey?: Uint8Array; symmetricAlg?: TpmtSymDefObject },
    opts: { auth?: AuthSession } = {},
  ): Promise<Buffer> {
    const w = new Writer().tpm2b(args.encryptionKey ?? EMPTY);
    writeTpm2bPublic(w, args.objectPublic);
    w.tpm2b(args.duplicate).tpm2b(args.inSymSeed);
    writeTpmtSymDefObject(w, args.symmetricAlg ?? { algorithm: TPM_ALG.NULL });
    return this.execute({ name: "TPM2_Import", code: TPM_CC.Import, handles: [parent], params: w.finish() }, [opts.auth ?? password()], (r) => r.tpm2b("outPrivate", 4096));
  }

  /** Part 3 §12.4 TPM2_ReadPublic; checks that the returned Name is the Name of the returned public area. */
  async readPublic(handle: number): Promise<ReadPublicResult> {
    const out = await this.execute({ name: "TPM2_ReadPublic", code: TPM_CC.ReadPublic, handles: [handle] }, [], (r) => ({
      ...readPublicRaw(r),
      name: r.tpm2b("name", 66),
      qualifiedName: r.tpm2b("qualifiedName", 66),
    }));
    if (!objectName(out.public).equals(out.name)) throw new TpmTrustError("ERR_NAME_MISMATCH", `TPM2_ReadPublic(0x${handle.toString(16)}): Name does not match the public area`);
    return out;
  }

  /** Part 3 §28.4 TPM2_FlushContext (flushHandle is a parameter, not a handle). */
  async flushContext(handle: number): Promise<void> {
    const params = new Writer().u32(handle).finish();
    await this.execute({ name: "TPM2_FlushContext", code: TPM_CC.FlushContext, params }, [], () => undefined);
  }

  /**
   * Part 3 §28.5 TPM2_EvictControl: makes a loaded object persistent at `persistentHandle`, or
   * removes a persistent object when `object` is that persistent handle.
   */
  async evictControl(object: number, persistentHandle: number, opts: { authHandle?: number; auth?: AuthSession } = {}): Promise<void> {
    const params = new Writer().u32(persistentHandle).finish();
    const req = { name: "TPM2_EvictControl", code: TPM_CC.EvictControl, handles: [opts.authHandle ?? TPM_RH.OWNER, object], params };
    await this.execute(req, [opts.auth ?? password()], () => undefined);
  }

  /** Part 3 §12.5 TPM2_ActivateCredential: `activate` is the credentialed object, `key` the EK. */
  async activateCredential(
    activate: number,
    key: number,
    credentialBlob: TpmsIdObject,
    secret: Uint8Array,
    auths: { activate?: AuthSession; key?: AuthSession } = {},
  ): Promise<Buffer> {
    const w = new Writer();
    writeTpm2bIdObject(w, credentialBlob);
    w.tpm2b(secret);
    const req = { name: "TPM2_ActivateCredential", code: TPM_CC.ActivateCredential, handles: [activate, key], params: w.finish() };
    return this.execute(req, [auths.activate ?? password(), auths.key ?? password()], (r) => r.tpm2b("certInfo", 64));
  }

  // ---- sessions and policy

  /**
   * Part 3 §11.1 TPM2_StartAuthSession: an unbound, unsalted policy (or trial) session with
   * symmetric NULL and `hashAlg` as its policy hash.
   */
  async startAuthSession(opts: { hashAlg?: number; trial?: boolean; continueSession?: boolean } = {}): Promise<PolicySession> {
    const hashAlg = opts.hashAlg ?? TPM_ALG.SHA256;
    const size = digestSize(hashAlg);
    const w = new Writer().tpm2b(this.random(size)).tpm2b(EMPTY).u8(opts.trial ? TPM_SE.TRIAL : TPM_SE.POLICY);
    writeTpmtSymDefObject(w, { algorithm: TPM_ALG.NULL });
    w.u16(hashAlg);
    const req = { name: "TPM2_StartAuthSession", code: TPM_CC.StartAuthSession, handles: [TPM_RH.NULL, TPM_RH.NULL], params: w.finish(), responseHandles: 1 };
    return this.execute(req, [], (r, [handle]) => new PolicySession(handle, hashAlg, r.tpm2b("nonceTPM", 64), size, opts.continueSession ?? false));
  }

  /** Part 3 §23.4 TPM2_PolicySecret: satisfies PolicySecret(authHandle) in `session`. */
  async policySecret(
    authHandle: number,
    session: PolicySession,
    opts: { auth?: AuthSession; cpHash?: Uint8Array; policyRef?: Uint8Array; expiration?: number } = {},
  ): Promise<{ timeout: Buffer; policyTicket: TpmtTicket }> {
    const w = new Writer().tpm2b(EMPTY).tpm2b(opts.cpHash ?? EMPTY).tpm2b(opts.policyRef ?? EMPTY).u32(opts.expiration ?? 0);
    const req = { name: "TPM2_PolicySecret", code: TPM_CC.PolicySecret, handles: [authHandle, session.handle], params: w.finish() };
    return this.execute(req, [opts.auth ?? password()], (r) => ({ timeout: r.tpm2b("timeout", 8), policyTicket: readTicket(r, "policyTicket") }));
  }

  /** Part 3 §23.11 TPM2_PolicyCommandCode */
  async policyCommandCode(session: PolicySession, commandCode: number): Promise<void> {
    const params = new Writer().u32(commandCode).finish();
    await this.execute({ name: "TPM2_PolicyCommandCode", code: TPM_CC.PolicyCommandCode, handles: [session.handle], params }, [], () => undefined);
  }

  /** Part 3 §23.19 TPM2_PolicyGetDigest */
  async policyGetDigest(session: PolicySession): Promise<Buffer> {
    return this.execute({ name: "TPM2_PolicyGetDigest", code: TPM_CC.PolicyGetDigest, handles: [session.handle] }, [], (r) => r.tpm2b("policyDigest", 64));
  }

  // ---- attestation and signing

  /** Part 3 §18.4 TPM2_Quote. `scheme` NULL uses the key's own scheme. */
  async quote(signHandle: number, qualifyingData: Uint8Array, pcrSelect: TpmsPcrSelection[], opts: { scheme?: TpmtScheme; auth?: AuthSession } = {}): Promise<AttestResult> {
    const w = new Writer().tpm2b(qualifyingData);
    writeTpmtScheme(w, opts.scheme ?? NULL_SCHEME);
    writeTpmlPcrSelection(w, pcrSelect);
    return this.execute({ name: "TPM2_Quote", code: TPM_CC.Quote, handles: [signHandle], params: w.finish() }, [opts.auth ?? password()], readAttest);
  }

  /** Part 3 §18.2 TPM2_Certify: `signHandle` attests that `objectHandle` is loaded in this TPM. */
  async certify(
    objectHandle: number,
    signHandle: number,
    qualifyingData: Uint8Array,
    opts: { scheme?: TpmtScheme; objectAuth?: AuthSession; signAuth?: AuthSession } = {},
  ): Promise<AttestResult> {
    const w = new Writer().tpm2b(qualifyingData);
    writeTpmtScheme(w, opts.scheme ?? NULL_SCHEME);
    const req = { name: "TPM2_Certify", code: TPM_CC.Certify, handles: [objectHandle, signHandle], params: w.finish() };
    return this.execute(req, [opts.objectAuth ?? password(), opts.signAuth ?? password()], readAttest);
  }

  /** Part 3 §18.3 TPM2_CertifyCreation: binds `objectHandle` to the creation data behind `creationHash`. */
  async certifyCreation(
    signHandle: number,
    objectHandle: number,
    qualifyingData: Uint8Array,
    creationHash: Uint8Array,
    creationTicket: TpmtTicket,
    opts: { scheme?: TpmtScheme; auth?: AuthSession } = {},
  ): Promise<AttestResult> {
    const w = new Writer().tpm2b(qualifyingData).tpm2b(creationHash);
    writeTpmtScheme(w, opts.scheme ?? NULL_SCHEME);
    writeTicket(w, creationTicket);
    const req = { name: "TPM2_CertifyCreation", code: TPM_CC.CertifyCreation, handles: [signHandle, objectHandle], params: w.finish() };
    return this.execute(req, [opts.auth ?? password()], readAttest);
  }

  /**
   * Part 3 §20.2 TPM2_Sign of a digest. Without `validation` a NULL hashcheck ticket is sent,
   * which a restricted key refuses (Part 3 §20.2.1).
   */
  async sign(keyHandle: number, digest: Uint8Array, opts: { scheme?: TpmtScheme; validation?: TpmtTicket; auth?: AuthSession } = {}): Promise<TpmtSignature> {
    const w = new Writer().tpm2b(digest);
    writeTpmtScheme(w, opts.scheme ?? NULL_SCHEME);
    writeTicket(w, opts.validation ?? { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY });
    return this.execute({ name: "TPM2_Sign", code: TPM_CC.Sign, handles: [keyHandle], params: w.finish() }, [opts.auth ?? password()], (r) => readTpmtSignature(r));
  }

  /** Part 3 §15.4 TPM2_HMAC with a loaded keyed-hash key; `hashAlg` NULL uses the key's scheme. */
  async hmac(handle: number, data: Uint8Array, opts: { hashAlg?: number; auth?: AuthSession } = {}): Promise<Buffer> {
    const params = new Writer().tpm2b(data).u16(opts.hashAlg ?? TPM_ALG.NULL).finish();
    return this.execute({ name: "TPM2_HMAC", code: TPM_CC.HMAC, handles: [handle], params }, [opts.auth ?? password()], (r) => r.tpm2b("outHMAC", 64));
  }

  // ---- PCRs

  /** Part 3 §22.2 TPM2_PCR_Extend: extends `pcr` in every bank given (TPML_DIGEST_VALUES). */
  async pcrExtend(pcr: number, digests: { hashAlg: number; digest: Uint8Array }[], opts: { auth?: AuthSession } = {}): Promise<void> {
    const w = new Writer().u32(digests.length);
    for (const d of digests) {
      if (d.digest.length !== digestSize(d.hashAlg)) throw usage(`PCR_Extend: a ${HASH_ALGS[d.hashAlg]?.name} digest has ${digestSize(d.hashAlg)} bytes, not ${d.digest.length}`);
      w.u16(d.hashAlg).bytes(d.digest); // TPMT_HA: hashAlg ‖ fixed-size digest (Part 2 §10.3.2)
    }
    await this.execute({ name: "TPM2_PCR_Extend", code: TPM_CC.PCR_Extend, handles: [pcr], params: w.finish() }, [opts.auth ?? password()], () => undefined);
  }

  /**
   * Part 3 §22.4 TPM2_PCR_Read of a whole selection. The TPM returns at most 8 digests per call,
   * so this reads until everything selected was returned, starting over if pcrUpdateCounter
   * changes in between. PCRs of unallocated banks are absent from the result.
   */
  async pcrRead(selection: TpmsPcrSelection[]): Promise<{ updateCounter: number; values: PcrBankMap }> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const values: PcrBankMap = new Map();
      const remaining = new Map(selection.map((s) => [s.hash, new Set(selectedPcrs(s))]));
      let counter: number | undefined;
      let changed = false;
      while ([...remaining.values()].some((s) => s.size > 0)) {
        const ask = [...remaining].filter(([, s]) => s.size > 0).map(([hash, s]) => pcrSelection(hash, [...s]));
        const w = new Writer();
        writeTpmlPcrSelection(w, ask);
        const out = await this.execute({ name: "TPM2_PCR_Read", code: TPM_CC.PCR_Read, params: w.finish() }, [], (r) => ({
          updateCounter: r.u32("pcrUpdateCounter"),
          selection: readTpmlPcrSelection(r),
          digests: readTpmlDigest(r),
        }));
        if (counter !== undefined && out.updateCounter !== counter) {
          changed = true;
          break;
        }
        counter = out.updateCounter;
        let i = 0;
        let got = 0;
        for (const sel of out.selection) {
          for (const pcr of selectedPcrs(sel)) {
            const digest = out.digests[i++];
            if (digest === undefined || !remaining.get(sel.hash)?.has(pcr)) {
              throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "TPM2_PCR_Read returned digests that do not fit its selection", { hash: sel.hash, pcr });
            }
            if (!values.has(sel.hash)) values.set(sel.hash, new Map());
            values.get(sel.hash)!.set(pcr, digest);
            remaining.get(sel.hash)!.delete(pcr);
            got++;
          }
        }
        if (i !== out.digests.length) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "TPM2_PCR_Read returned more digests than selected PCRs");
        if (got === 0) break; // the rest is in banks the TPM has not allocated
      }
      if (!changed) return { updateCounter: counter ?? 0, values };
    }
    throw new TpmTrustError("ERR_TPM_TRANSPORT", "PCRs kept changing while being read");
  }

  // ---- NV

  /** Part 3 §31.6 TPM2_NV_ReadPublic */
  async nvReadPublic(index: number): Promise<{ nvPublic: TpmsNvPublic; name: Buffer }> {
    return this.execute({ name: "TPM2_NV_ReadPublic", code: TPM_CC.NV_ReadPublic, handles: [index] }, [], (r) => ({ nvPublic: readTpm2bNvPublic(r), name: r.tpm2b("nvName", 66) }));
  }

  /** Part 3 §31.3 TPM2_NV_DefineSpace (authHandle TPM_RH_OWNER or TPM_RH_PLATFORM). */
  async nvDefineSpace(nvPublic: TpmsNvPublic, opts: { authHandle?: number; auth?: AuthSession; indexAuth?: Uint8Array } = {}): Promise<void> {
    const w = new Writer().tpm2b(opts.indexAuth ?? EMPTY);
    writeTpm2bNvPublic(w, nvPublic);
    const req = { name: "TPM2_NV_DefineSpace", code: TPM_CC.NV_DefineSpace, handles: [opts.authHandle ?? TPM_RH.OWNER], params: w.finish() };
    await this.execute(req, [opts.auth ?? password()], () => undefined);
  }

  /** TPM_PT_NV_BUFFER_MAX: the largest NV_Read/NV_Write chunk this TPM takes. */
  async maxNvBuffer(): Promise<number> {
    if (this.nvBufferMax === undefined) {
      const v = (await this.getProperties(TPM_PT.NV_BUFFER_MAX, 1)).get(TPM_PT.NV_BUFFER_MAX);
      this.nvBufferMax = v && v > 0 ? Math.min(v, 2048) : 512;
    }
    return this.nvBufferMax;
  }

  /**
   * Part 3 §31.13 TPM2_NV_Read of `size` bytes from `offset` (default: the whole index), in chunks
   * of TPM_PT_NV_BUFFER_MAX. `authHandle` defaults to the index itself (AUTHREAD).
   */
  async nvRead(index: number, opts: { authHandle?: number; auth?: AuthSession; offset?: number; size?: number } = {}): Promise<Buffer> {
    const offset = opts.offset ?? 0;
    const size = opts.size ?? (await this.nvReadPublic(index)).nvPublic.dataSize - offset;
    const chunk = await this.maxNvBuffer();
    const parts: Buffer[] = [];
    for (let done = 0; done < size; ) {
      const n = Math.min(chunk, size - done);
      const params = new Writer().u16(n).u16(offset + done).finish();
      const req = { name: "TPM2_NV_Read", code: TPM_CC.NV_Read, handles: [opts.authHandle ?? index, index], params };
      const data = await this.execute(req, [opts.auth ?? password()], (r) => r.tpm2b("data", 2048));
      if (data.length !== n) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `TPM2_NV_Read returned ${data.length} bytes, asked for ${n}`, { index, offset: offset + done });
      parts.push(data);
      done += n;
    }
    return Buffer.concat(parts);
  }

  /** Part 3 §31.7 TPM2_NV_Write of `data` at `offset`, in chunks of TPM_PT_NV_BUFFER_MAX. */
  async nvWrite(index: number, data: Uint8Array, opts: { authHandle?: number; auth?: AuthSession; offset?: number } = {}): Promise<void> {
    const offset = opts.offset ?? 0;
    const chunk = await this.maxNvBuffer();
    for (let done = 0; done < data.length; done += chunk) {
      const part = data.subarray(done, Math.min(done + chunk, data.length));
      const params = new Writer().tpm2b(part).u16(offset + done).finish();
      const req = { name: "TPM2_NV_Write", code: TPM_CC.NV_Write, handles: [opts.authHandle ?? index, index], params };
      await this.execute(req, [opts.auth ?? password()], () => undefined);
    }
  }
}

// Part 2 §10.10 TPMS_CAPABILITY_DATA union members tpmtrust reads.
function readCapability(r: Reader, cap: number): CapabilityData {
  switch (cap) {
    case TPM_CAP.ALGS:
      return { capability: cap, algs: list(r, "algs", () => ({ alg: r.u16("alg"), attributes: r.u32("algProperties") })) };
    case TPM_CAP.HANDLES:
      return { capability: cap, handles: list(r, "handles", () => r.u32("handle")) };
    case TPM_CAP.COMMANDS:
      return { capability: cap, commands: list(r, "commands", () => r.u32("commandAttributes")) };
    case TPM_CAP.PCRS:
      return { capability: cap, pcrs: readTpmlPcrSelection(r) };
    case TPM_CAP.TPM_PROPERTIES:
      return { capability: cap, properties: list(r, "properties", () => ({ property: r.u32("property"), value: r.u32("value") })) };
    case TPM_CAP.ECC_CURVES:
      return { capability: cap, curves: list(r, "curves", () => r.u16("curve")) };
    default:
      throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `capability ${cap} is not supported`, { capability: cap });
  }
}
