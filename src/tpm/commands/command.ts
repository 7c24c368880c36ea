import { TPM_ST } from "../constants.js";
import { Reader, Writer } from "../marshal.js";
import { TpmRcError } from "../rc.js";
import type { AuthCommand, AuthResponse, AuthSession } from "./session.js";

export interface CommandRequest {
  /** e.g. "TPM2_Quote", for error messages */
  name: string;
  /** TPM_CC (Part 2 §6.5) */
  code: number;
  /** the handle area */
  handles?: number[];
  /** the parameter area */
  params?: Buffer;
  /** number of handles in the response's handle area */
  responseHandles?: number;
}

export interface ParsedResponse {
  handles: number[];
  /** the parameter area and its offset within the response (for error offsets) */
  params: Buffer;
  paramsOffset: number;
  auths: AuthResponse[];
}

/**
 * Part 1 §18.7 command layout: tag ‖ commandSize ‖ commandCode ‖ handles ‖ [authorizationSize ‖
 * TPMS_AUTH_COMMAND…] ‖ parameters. The tag is TPM_ST_SESSIONS exactly when there are sessions.
 */
export function marshalCommand(req: CommandRequest, auths: AuthCommand[]): Buffer {
  const body = new Writer();
  for (const h of req.handles ?? []) body.u32(h);
  if (auths.length > 0) {
    const area = new Writer();
    for (const a of auths) area.u32(a.sessionHandle).tpm2b(a.nonce).u8(a.sessionAttributes).tpm2b(a.hmac);
    const bytes = area.finish();
    body.u32(bytes.length).bytes(bytes);
  }
  body.bytes(req.params ?? Buffer.alloc(0));
  const b = body.finish();
  return new Writer()
    .u16(auths.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS)
    .u32(10 + b.length)
    .u32(req.code)
    .bytes(b)
    .finish();
}

/**
 * Part 1 §18.8 response layout: tag ‖ responseSize ‖ responseCode ‖ handles ‖ [parameterSize] ‖
 * parameters ‖ [TPMS_AUTH_RESPONSE…]. A non-zero responseCode becomes a TpmRcError.
 */
export function unmarshalResponse(resp: Buffer, name: string, responseHandles: number, sessions: number): ParsedResponse {
  const r = new Reader(resp);
  const tag = r.u16("response.tag");
  const sizeAt = r.offset;
  const size = r.u32("response.size");
  if (size !== resp.length) r.fail("response.size", `says ${size} bytes, response has ${resp.length}`, sizeAt);
  const rc = r.u32("response.code");
  if (rc !== 0) throw new TpmRcError(rc, name);
  const expected = sessions > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  if (tag !== expected) r.fail("response.tag", `0x${tag.toString(16)} where 0x${expected.toString(16)} was expected`, 0);
  const handles: number[] = [];
  for (let i = 0; i < responseHandles; i++) handles.push(r.u32("response.handle"));
  if (sessions === 0) {
    const paramsOffset = r.offset;
    return { handles, params: r.bytes(r.remaining, "response.parameters"), paramsOffset, auths: [] };
  }
  const paramSize = r.u32("response.parameterSize");
  const paramsOffset = r.offset;
  const params = r.bytes(paramSize, "response.parameters");
  const auths: AuthResponse[] = [];
  for (let i = 0; i < sessions; i++) {
    auths.push({ nonce: r.tpm2b("authResponse.nonce", 64), sessionAttributes: r.u8("authResponse.sessionAttributes"), hmac: r.tpm2b("authResponse.hmac", 64) });
  }
  r.end("response");
  return { handles, params, paramsOffset, auths };
}

/**
 * One TPM command as go-tpm's tpm2 package models them: the spec name and command code, a typed
 * request (its handles, the sessions authorizing them, its parameters) and the typed response.
 * `TpmClient.run` executes it. An operation that takes more than one command (paging, chunking,
 * retrying) is a function next to its command that takes the client.
 */
export interface Command<Req, Resp> {
  /** the spec name, e.g. "TPM2_Quote" */
  readonly name: string;
  /** TPM_CC (Part 2 §6.5) */
  readonly code: number;
  /** number of handles in the response's handle area */
  readonly responseHandles?: number;
  /**
   * Where the first parameter is a TPM2B that carries or may carry a secret, so that the client's
   * parameter-encryption session encrypts it (Part 1 §21.1: only a TPM2B first parameter can be).
   */
  readonly parameterEncryption?: { command?: boolean; response?: boolean };
  /** the handle area; the authorized handles come first, one AuthSession each */
  handles?(req: Req): number[];
  auths?(req: Req): AuthSession[];
  /** writes the parameter area */
  params?(req: Req, w: Writer): void;
  /** reads the response parameters (must consume them exactly) and checks them against the request */
  response?(r: Reader, handles: number[], req: Req): Resp;
}
