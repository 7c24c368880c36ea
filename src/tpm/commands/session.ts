import { TPM_RS_PW, TPMA_SESSION } from "../constants.js";

/** One entry of a command's authorization area (Part 2 §10.13.2 TPMS_AUTH_COMMAND). */
export interface AuthCommand {
  sessionHandle: number;
  nonce: Buffer;
  sessionAttributes: number;
  hmac: Buffer;
}

/** One entry of a response's authorization area (Part 2 §10.13.3 TPMS_AUTH_RESPONSE). */
export interface AuthResponse {
  nonce: Buffer;
  sessionAttributes: number;
  hmac: Buffer;
}

/** What an HMAC session computes its command HMAC over (Part 1 §19.6.5, §18.7 cpHash). */
export interface CommandContext {
  /** TPM_CC */
  code: number;
  /** Names of the handles in the handle area (only filled when a session computes an HMAC) */
  names: Buffer[];
  /** the parameter area as sent (after parameter encryption) */
  params: Buffer;
  /** this session encrypts the command's first parameter / the response's first parameter */
  decrypt: boolean;
  encrypt: boolean;
  /** nonceTPM of a separate decrypt and encrypt session, which the first session's HMAC covers (Part 1 §19.6.5) */
  nonceDecrypt?: Buffer;
  nonceEncrypt?: Buffer;
}

/** What an HMAC session checks the response HMAC against (Part 1 §18.8 rpHash). */
export interface ResponseContext {
  code: number;
  /** the response parameter area as received (before decryption) */
  params: Buffer;
}

/** Authorizes one handle of one command, or (with `hmac`) protects the command's parameters. */
export interface AuthSession {
  /** an HMAC session, whose HMAC covers the Names of the command's handles */
  readonly hmac?: boolean;
  /** chooses this command's nonceCaller (before parameter encryption, which depends on it) */
  begin?(random: (n: number) => Buffer): void;
  authCommand(random: (n: number) => Buffer, ctx: CommandContext): AuthCommand;
  /** Takes the TPM's answer for this session (new nonceTPM); an HMAC session checks the response HMAC. */
  update(resp: AuthResponse, ctx: ResponseContext): void;
}

/** A session that also encrypts the first parameter of commands and responses (Part 1 §21). */
export interface ParameterEncryptionSession extends AuthSession {
  readonly nonceTPM: Buffer;
  /** the data of the command's first TPM2B parameter, encrypted */
  encryptParameter(data: Buffer): Buffer;
  /** the data of the response's first TPM2B parameter, decrypted (after update) */
  decryptParameter(data: Buffer): Buffer;
}

/** Password authorization (Part 1 §19.8.4): TPM_RS_PW, empty nonce, the authValue in the hmac field. */
export class PasswordAuth implements AuthSession {
  readonly value: Buffer;
  constructor(value: Uint8Array | string = Buffer.alloc(0)) {
    this.value = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);
  }
  authCommand(): AuthCommand {
    return { sessionHandle: TPM_RS_PW, nonce: Buffer.alloc(0), sessionAttributes: 0, hmac: this.value };
  }
  update(): void {}
}

/** Empty-password authorization, the default for every handle that needs one. */
export const password = (value?: Uint8Array | string): PasswordAuth => new PasswordAuth(value);

/**
 * A policy session started unbound and unsalted (Part 1 §19.6). Without PolicyAuthValue or
 * PolicyPassword the TPM checks no HMAC for it, so the hmac field stays empty; a fresh nonceCaller
 * goes with every use. Unless `continueSession`, the TPM closes the session after the first
 * command that succeeds with it.
 */
export class PolicySession implements AuthSession {
  nonceTPM: Buffer;
  constructor(
    readonly handle: number,
    readonly hashAlg: number,
    nonceTPM: Buffer,
    private readonly digestSize: number,
    readonly continueSession = false,
  ) {
    this.nonceTPM = nonceTPM;
  }
  authCommand(random: (n: number) => Buffer): AuthCommand {
    return {
      sessionHandle: this.handle,
      nonce: random(this.digestSize),
      sessionAttributes: this.continueSession ? TPMA_SESSION.continueSession : 0,
      hmac: Buffer.alloc(0),
    };
  }
  update(resp: AuthResponse): void {
    this.nonceTPM = resp.nonce;
  }
}
