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

/** Authorizes one handle of one command. */
export interface AuthSession {
  authCommand(random: (n: number) => Buffer): AuthCommand;
  /** Takes the TPM's answer for this session (new nonceTPM). */
  update(resp: AuthResponse): void;
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
