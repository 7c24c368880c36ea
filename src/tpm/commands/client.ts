/**
 * The TPM client: a Transport, the sessions that authorize each command, and `run`, which executes
 * the typed commands of this directory (one module per Part 3 command, spec names throughout):
 * `tpm.run(Quote, { signHandle, qualifyingData, PCRselect })`. Operations that take several
 * commands (a whole PCR selection, a whole NV index, paged capabilities) are functions next to
 * their command that take the client (`pcrReadAll(tpm, selection)`).
 */
import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { Reader, Writer } from "../marshal.js";
import { TpmRcError } from "../rc.js";
import type { Transport } from "../transport/transport.js";
import { marshalCommand, unmarshalResponse, type Command, type CommandRequest, type ParsedResponse } from "./command.js";
import { FlushContext } from "./flush-context.js";
import { NV_ReadPublic } from "./nv-read-public.js";
import { ReadPublic } from "./read-public.js";
import { PolicySession, type AuthSession, type CommandContext, type ParameterEncryptionSession } from "./session.js";

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
  private async execute<T>(
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
        if (a instanceof PolicySession && !a.continueSession) await this.run(FlushContext, { flushHandle: a.handle }).catch(() => undefined);
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
    return this.execute(creq, cmd.auths?.(req) ?? [], (r, handles) => cmd.response?.(r, handles, req) as R, encryption);
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
}

/** Replaces the data of the TPM2B at the start of a parameter area (its size stays). */
function mapFirstTpm2b(params: Buffer, fn: (data: Buffer) => Buffer): Buffer {
  if (params.length < 2) return params;
  const size = params.readUInt16BE(0);
  if (size === 0 || 2 + size > params.length) return params;
  return Buffer.concat([params.subarray(0, 2), fn(params.subarray(2, 2 + size)), params.subarray(2 + size)]);
}
