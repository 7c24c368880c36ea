/**
 * The TPM client: a Transport, the sessions that authorize each command, and execution of the
 * typed commands of this directory (one module per Part 3 command, spec names throughout). The
 * methods below are shorthands that fill a command's request and run it; the multi-call
 * operations (reading all handles, a whole PCR selection, a whole NV index) loop over one command.
 */
import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { TPM_ALG, TPM_CAP, TPM_PT, TPM_SE } from "../constants.js";
import { Reader, Writer } from "../marshal.js";
import { TpmRcError } from "../rc.js";
import { digestSize, objectName, pcrSelection, selectedPcrs } from "../structures.js";
import type { Transport } from "../transport/transport.js";
import type { TpmsIdObject, TpmsNvPublic, TpmsPcrSelection, TpmtPublic, TpmtScheme, TpmtSignature, TpmtSymDefObject } from "../types.js";
import { ActivateCredential } from "./activate-credential.js";
import { CertifyCreation } from "./certify-creation.js";
import { Certify } from "./certify.js";
import { marshalCommand, unmarshalResponse, type Command, type CommandRequest, type ParsedResponse } from "./command.js";
import { CreatePrimary, type CreatePrimaryResult } from "./create-primary.js";
import { Create, type CreateResult } from "./create.js";
import { EvictControl } from "./evict-control.js";
import { FlushContext } from "./flush-context.js";
import { GetCapability, type CapabilityData } from "./get-capability.js";
import { GetRandom } from "./get-random.js";
import { HMAC } from "./hmac.js";
import { Import } from "./import.js";
import { Load } from "./load.js";
import { NV_DefineSpace } from "./nv-define-space.js";
import { NV_ReadPublic } from "./nv-read-public.js";
import { NV_Read } from "./nv-read.js";
import { NV_Write } from "./nv-write.js";
import type { AttestResult, SensitiveCreate, TpmtTicket } from "./params.js";
import { PCR_Extend } from "./pcr-extend.js";
import { PCR_Read } from "./pcr-read.js";
import { PolicyCommandCode } from "./policy-command-code.js";
import { PolicyGetDigest } from "./policy-get-digest.js";
import { PolicySecret } from "./policy-secret.js";
import { Quote } from "./quote.js";
import { ReadPublic, type ReadPublicResult } from "./read-public.js";
import { password, PolicySession, type AuthSession, type CommandContext, type ParameterEncryptionSession } from "./session.js";
import { Sign } from "./sign.js";
import { StartAuthSession } from "./start-auth-session.js";
import { Startup } from "./startup.js";
import { Unseal } from "./unseal.js";

export interface CreateOptions {
  /** authorization of the parent / hierarchy (default: empty password) */
  auth?: AuthSession;
  sensitive?: SensitiveCreate;
  outsideInfo?: Uint8Array;
  creationPcrs?: TpmsPcrSelection[];
}

/** PCR values by bank (TPM_ALG_ID) then PCR index. */
export type PcrBankMap = Map<number, Map<number, Buffer>>;

export interface ClientOptions {
  /** randomness for nonceCaller (fixed only to replay recorded sessions) */
  random?: (n: number) => Buffer;
}

// Part 2 §6.6.3 warnings after which the same command may simply be sent again: TPM_RC_YIELDED,
// TPM_RC_TESTING, TPM_RC_RETRY.
const RETRYABLE = new Set([0x908, 0x90a, 0x922]);

export class TpmClient {
  /** randomness for nonceCaller */
  readonly random: (n: number) => Buffer;
  private nvBufferMax: number | undefined;
  /**
   * The salted session (crypto/session.ts) that protects every command whose first parameter, or
   * whose response's first parameter, may carry a secret (Command.parameterEncryption) while set.
   */
  encryption: ParameterEncryptionSession | undefined;

  constructor(
    readonly transport: Transport,
    opts: ClientOptions = {},
  ) {
    this.random = opts.random ?? randomBytes;
  }

  /**
   * Sends one command with one AuthSession per authorized handle and parses the response's
   * parameter area with `parse`, which must consume it exactly. With `encryption`, that session
   * goes last in the authorization area and encrypts the first parameter of the command and/or of
   * the response. One-shot policy sessions that a failed command leaves open are flushed.
   */
  async execute<T>(
    req: CommandRequest,
    auths: AuthSession[],
    parse: (r: Reader, handles: number[]) => T,
    encryption?: { session: ParameterEncryptionSession; command: boolean; response: boolean },
  ): Promise<T> {
    try {
      const out = await this.exchange(req, auths, encryption);
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

  /** Executes one typed command (see command.ts). */
  async run<Q, R>(cmd: Command<Q, R>, req: Q): Promise<R> {
    const w = new Writer();
    cmd.params?.(req, w);
    const creq: CommandRequest = { name: cmd.name, code: cmd.code, handles: cmd.handles?.(req) ?? [], params: w.finish(), responseHandles: cmd.responseHandles };
    const pe = cmd.parameterEncryption;
    const encryption = this.encryption && pe ? { session: this.encryption, command: pe.command === true, response: pe.response === true } : undefined;
    return this.execute(creq, cmd.auths?.(req) ?? [], (r, handles) => cmd.response?.(r, handles) as R, encryption);
  }

  /**
   * The Name of each handle (Part 1 §16): the TPM's Name of an object or NV index, the handle
   * itself for everything else. HMAC sessions cover them; a Name the TPM did not give fails the HMAC.
   */
  private async names(handles: number[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const h of handles) {
      const type = h >>> 24;
      if (type === 0x80 || type === 0x81) out.push((await this.run(ReadPublic, { objectHandle: h })).name);
      else if (type === 0x01) out.push((await this.run(NV_ReadPublic, { nvIndex: h })).name);
      else out.push(Buffer.from([h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff]));
    }
    return out;
  }

  /**
   * Sends the command, again while the TPM answers with a retryable warning (up to 10 times):
   * fresh nonces, parameter encryption, every session's authorization; then every session checks
   * the response and the first response parameter is decrypted.
   */
  private async exchange(
    req: CommandRequest,
    auths: AuthSession[],
    enc: { session: ParameterEncryptionSession; command: boolean; response: boolean } | undefined,
  ): Promise<ParsedResponse> {
    const sessions = enc ? [...auths, enc.session] : auths;
    const names = sessions.some((s) => s.hmac) ? await this.names(req.handles ?? []) : [];
    for (let attempt = 1; ; attempt++) {
      for (const s of sessions) s.begin?.(this.random);
      const params = enc?.command ? mapFirstTpm2b(req.params ?? Buffer.alloc(0), (d) => enc.session.encryptParameter(d)) : req.params;
      const authCommands = sessions.map((s, i) => {
        const mine = s === enc?.session;
        const ctx: CommandContext = { code: req.code, names, params: params ?? Buffer.alloc(0), decrypt: mine && enc!.command, encrypt: mine && enc!.response };
        if (i === 0 && enc && !mine) {
          if (enc.command) ctx.nonceDecrypt = enc.session.nonceTPM;
          if (enc.response) ctx.nonceEncrypt = enc.session.nonceTPM;
        }
        return s.authCommand(this.random, ctx);
      });
      const resp = await this.transport.send(marshalCommand({ ...req, params }, authCommands));
      let out: ParsedResponse;
      try {
        out = unmarshalResponse(resp, req.name, req.responseHandles ?? 0, sessions.length);
      } catch (e) {
        if (!(e instanceof TpmRcError && RETRYABLE.has(e.rc.rc)) || attempt === 10) throw e;
        await new Promise((r) => setTimeout(r, 5 * attempt));
        continue;
      }
      out.auths.forEach((a, i) => sessions[i].update(a, { code: req.code, params: out.params }));
      if (enc?.response) out.params = mapFirstTpm2b(out.params, (d) => enc.session.decryptParameter(d));
      return out;
    }
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  // ---- start-up, capabilities, randomness

  /** TPM2_Startup. Returns false if the TPM was already started (TPM_RC_INITIALIZE). */
  async startup(type: "clear" | "state" = "clear"): Promise<boolean> {
    try {
      await this.run(Startup, { startupType: type });
      return true;
    } catch (e) {
      if (e instanceof TpmRcError && e.rc.rc === 0x100) return false;
      throw e;
    }
  }

  /** TPM2_GetCapability; the answer must be the capability asked for. */
  async getCapability(capability: number, property: number, propertyCount: number): Promise<{ moreData: boolean; data: CapabilityData }> {
    const out = await this.run(GetCapability, { capability, property, propertyCount });
    if (out.data.capability !== capability) {
      throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `capabilityData.capability: asked for ${capability}, got ${out.data.capability}`, { capability: out.data.capability });
    }
    return out;
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

  /** TPM2_GetRandom, repeated until `n` bytes are collected. */
  async getRandom(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const got = await this.run(GetRandom, { bytesRequested: Math.min(n - have, 64) });
      if (got.length === 0) throw new TpmTrustError("ERR_TPM_TRANSPORT", "TPM2_GetRandom returned no bytes");
      parts.push(got);
      have += got.length;
    }
    return Buffer.concat(parts).subarray(0, n);
  }

  // ---- objects

  createPrimary(hierarchy: number, template: TpmtPublic, opts: CreateOptions = {}): Promise<CreatePrimaryResult> {
    return this.run(CreatePrimary, { primaryHandle: hierarchy, inPublic: template, ...creation(opts) });
  }

  create(parent: number, template: TpmtPublic, opts: CreateOptions = {}): Promise<CreateResult> {
    return this.run(Create, { parentHandle: parent, inPublic: template, ...creation(opts) });
  }

  /** `priv` is the TPM2B_PRIVATE contents. */
  load(parent: number, priv: Uint8Array, pub: TpmtPublic, opts: { auth?: AuthSession } = {}): Promise<{ handle: number; name: Buffer }> {
    return this.run(Load, { parentHandle: parent, auth: opts.auth, inPrivate: priv, inPublic: pub });
  }

  import(
    parent: number,
    args: { objectPublic: TpmtPublic; duplicate: Uint8Array; inSymSeed: Uint8Array; encryptionKey?: Uint8Array; symmetricAlg?: TpmtSymDefObject },
    opts: { auth?: AuthSession } = {},
  ): Promise<Buffer> {
    return this.run(Import, { parentHandle: parent, auth: opts.auth, ...args });
  }

  /** TPM2_ReadPublic; checks that the returned Name is the Name of the returned public area. */
  async readPublic(handle: number): Promise<ReadPublicResult> {
    const out = await this.run(ReadPublic, { objectHandle: handle });
    if (!objectName(out.public).equals(out.name)) throw new TpmTrustError("ERR_NAME_MISMATCH", `TPM2_ReadPublic(0x${handle.toString(16)}): Name does not match the public area`);
    return out;
  }

  flushContext(handle: number): Promise<void> {
    return this.run(FlushContext, { flushHandle: handle });
  }

  evictControl(object: number, persistentHandle: number, opts: { authHandle?: number; auth?: AuthSession } = {}): Promise<void> {
    return this.run(EvictControl, { auth: opts.authHandle, authSession: opts.auth, objectHandle: object, persistentHandle });
  }

  /** `activate` is the credentialed object, `key` the EK. */
  activateCredential(activate: number, key: number, credentialBlob: TpmsIdObject, secret: Uint8Array, auths: { activate?: AuthSession; key?: AuthSession } = {}): Promise<Buffer> {
    return this.run(ActivateCredential, { activateHandle: activate, activateAuth: auths.activate, keyHandle: key, keyAuth: auths.key, credentialBlob, secret });
  }

  // ---- sessions and policy

  /** An unbound, unsalted policy (or trial) session with symmetric NULL and `hashAlg` as its policy hash. */
  async startAuthSession(opts: { hashAlg?: number; trial?: boolean; continueSession?: boolean } = {}): Promise<PolicySession> {
    const hashAlg = opts.hashAlg ?? TPM_ALG.SHA256;
    const size = digestSize(hashAlg);
    const sessionType = opts.trial ? TPM_SE.TRIAL : TPM_SE.POLICY;
    const { handle, nonceTPM } = await this.run(StartAuthSession, { nonceCaller: this.random(size), sessionType, authHash: hashAlg });
    return new PolicySession(handle, hashAlg, nonceTPM, size, opts.continueSession ?? false);
  }

  policySecret(
    authHandle: number,
    session: PolicySession,
    opts: { auth?: AuthSession; cpHash?: Uint8Array; policyRef?: Uint8Array; expiration?: number } = {},
  ): Promise<{ timeout: Buffer; policyTicket: TpmtTicket }> {
    return this.run(PolicySecret, { authHandle, auth: opts.auth, policySession: session.handle, cpHashA: opts.cpHash, policyRef: opts.policyRef, expiration: opts.expiration });
  }

  policyCommandCode(session: PolicySession, commandCode: number): Promise<void> {
    return this.run(PolicyCommandCode, { policySession: session.handle, code: commandCode });
  }

  policyGetDigest(session: PolicySession): Promise<Buffer> {
    return this.run(PolicyGetDigest, { policySession: session.handle });
  }

  // ---- attestation and signing

  quote(signHandle: number, qualifyingData: Uint8Array, pcrSelect: TpmsPcrSelection[], opts: { scheme?: TpmtScheme; auth?: AuthSession } = {}): Promise<AttestResult> {
    return this.run(Quote, { signHandle, auth: opts.auth, qualifyingData, inScheme: opts.scheme, PCRselect: pcrSelect });
  }

  certify(
    objectHandle: number,
    signHandle: number,
    qualifyingData: Uint8Array,
    opts: { scheme?: TpmtScheme; objectAuth?: AuthSession; signAuth?: AuthSession } = {},
  ): Promise<AttestResult> {
    return this.run(Certify, { objectHandle, objectAuth: opts.objectAuth, signHandle, signAuth: opts.signAuth, qualifyingData, inScheme: opts.scheme });
  }

  certifyCreation(
    signHandle: number,
    objectHandle: number,
    qualifyingData: Uint8Array,
    creationHash: Uint8Array,
    creationTicket: TpmtTicket,
    opts: { scheme?: TpmtScheme; auth?: AuthSession } = {},
  ): Promise<AttestResult> {
    return this.run(CertifyCreation, { signHandle, auth: opts.auth, objectHandle, qualifyingData, creationHash, inScheme: opts.scheme, creationTicket });
  }

  sign(keyHandle: number, digest: Uint8Array, opts: { scheme?: TpmtScheme; validation?: TpmtTicket; auth?: AuthSession } = {}): Promise<TpmtSignature> {
    return this.run(Sign, { keyHandle, auth: opts.auth, digest, inScheme: opts.scheme, validation: opts.validation });
  }

  hmac(handle: number, data: Uint8Array, opts: { hashAlg?: number; auth?: AuthSession } = {}): Promise<Buffer> {
    return this.run(HMAC, { handle, auth: opts.auth, buffer: data, hashAlg: opts.hashAlg });
  }

  unseal(itemHandle: number, opts: { auth?: AuthSession } = {}): Promise<Buffer> {
    return this.run(Unseal, { itemHandle, auth: opts.auth });
  }

  // ---- PCRs

  pcrExtend(pcr: number, digests: { hashAlg: number; digest: Uint8Array }[], opts: { auth?: AuthSession } = {}): Promise<void> {
    return this.run(PCR_Extend, { pcrHandle: pcr, auth: opts.auth, digests });
  }

  /**
   * TPM2_PCR_Read of a whole selection. The TPM returns at most 8 digests per call,
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
        const out = await this.run(PCR_Read, { pcrSelectionIn: ask });
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

  nvReadPublic(index: number): Promise<{ nvPublic: TpmsNvPublic; name: Buffer }> {
    return this.run(NV_ReadPublic, { nvIndex: index });
  }

  nvDefineSpace(nvPublic: TpmsNvPublic, opts: { authHandle?: number; auth?: AuthSession; indexAuth?: Uint8Array } = {}): Promise<void> {
    return this.run(NV_DefineSpace, { authHandle: opts.authHandle, auth: opts.auth, indexAuth: opts.indexAuth, publicInfo: nvPublic });
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
   * TPM2_NV_Read of `size` bytes from `offset` (default: the whole index), in chunks of
   * TPM_PT_NV_BUFFER_MAX. `authHandle` defaults to the index itself (AUTHREAD).
   */
  async nvRead(index: number, opts: { authHandle?: number; auth?: AuthSession; offset?: number; size?: number } = {}): Promise<Buffer> {
    const offset = opts.offset ?? 0;
    const size = opts.size ?? (await this.nvReadPublic(index)).nvPublic.dataSize - offset;
    const chunk = await this.maxNvBuffer();
    const parts: Buffer[] = [];
    for (let done = 0; done < size; ) {
      const n = Math.min(chunk, size - done);
      const data = await this.run(NV_Read, { authHandle: opts.authHandle ?? index, auth: opts.auth, nvIndex: index, size: n, offset: offset + done });
      if (data.length !== n) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `TPM2_NV_Read returned ${data.length} bytes, asked for ${n}`, { index, offset: offset + done });
      parts.push(data);
      done += n;
    }
    return Buffer.concat(parts);
  }

  /** TPM2_NV_Write of `data` at `offset`, in chunks of TPM_PT_NV_BUFFER_MAX. */
  async nvWrite(index: number, data: Uint8Array, opts: { authHandle?: number; auth?: AuthSession; offset?: number } = {}): Promise<void> {
    const offset = opts.offset ?? 0;
    const chunk = await this.maxNvBuffer();
    for (let done = 0; done < data.length; done += chunk) {
      const part = data.subarray(done, Math.min(done + chunk, data.length));
      await this.run(NV_Write, { authHandle: opts.authHandle ?? index, auth: opts.auth, nvIndex: index, data: part, offset: offset + done });
    }
  }
}

/** Replaces the data of the TPM2B at the start of a parameter area (its size stays). */
function mapFirstTpm2b(params: Buffer, fn: (data: Buffer) => Buffer): Buffer {
  if (params.length < 2) return params;
  const size = params.readUInt16BE(0);
  if (size === 0 || 2 + size > params.length) return params;
  return Buffer.concat([params.subarray(0, 2), fn(params.subarray(2, 2 + size)), params.subarray(2 + size)]);
}

function creation(opts: CreateOptions) {
  return { auth: opts.auth, inSensitive: opts.sensitive, outsideInfo: opts.outsideInfo, creationPCR: opts.creationPcrs };
}
