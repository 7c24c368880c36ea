/**
 * Salted HMAC sessions with AES-CFB parameter encryption (TPM 2.0 Part 1 §19.6 sessions, §21
 * parameter encryption): the salt is encrypted to a TPM key the caller trusts (the EK or the SRK),
 * so a passive interposer on the TPM bus learns neither the session key nor what the encrypted
 * parameters carry, and every response is checked against the session HMAC.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, timingSafeEqual } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { TPM_ALG, TPM_SE, TPMA_SESSION } from "../tpm/constants.js";
import { StartAuthSession } from "../tpm/commands/start-auth-session.js";
import type { TpmClient } from "../tpm/commands/client.js";
import type { AuthCommand, AuthResponse, CommandContext, ParameterEncryptionSession, ResponseContext } from "../tpm/commands/session.js";
import type { TpmtPublic } from "../tpm/types.js";
import { hashAlgorithm, kdfa } from "./kdf.js";
import { shareSeed } from "./protect.js";
import { FlushContext } from "../tpm/commands/index.js";

const u32 = (v: number) => Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
const EMPTY = Buffer.alloc(0);

class HmacSession implements ParameterEncryptionSession {
  readonly hmac = true;
  nonceTPM: Buffer;
  private nonceCaller: Buffer = EMPTY;
  private readonly node: string;
  private readonly size: number;

  constructor(
    readonly handle: number,
    readonly hashAlg: number,
    /** KDFa(hashAlg, salt, "ATH", nonceTPM, nonceCaller, digest bits) (Part 1 §19.6.11) */
    private readonly sessionKey: Buffer,
    nonceTPM: Buffer,
    /** AES key size of the session's symmetric definition */
    private readonly keyBits: number,
    /** authValue of the entity this session authorizes (empty when it only encrypts) */
    private readonly authValue: Buffer = EMPTY,
  ) {
    this.nonceTPM = nonceTPM;
    ({ node: this.node, size: this.size } = hashAlgorithm(hashAlg));
  }

  private get key(): Buffer {
    return Buffer.concat([this.sessionKey, this.authValue]);
  }

  begin(random: (n: number) => Buffer): void {
    this.nonceCaller = random(this.size);
  }

  /** HMAC(sessionKey ‖ authValue, cpHash ‖ nonceCaller ‖ nonceTPM ‖ [nonceDecrypt] ‖ [nonceEncrypt] ‖ attributes) (Part 1 §19.6.5). */
  authCommand(_random: (n: number) => Buffer, ctx: CommandContext): AuthCommand {
    const attributes = TPMA_SESSION.continueSession | (ctx.decrypt ? TPMA_SESSION.decrypt : 0) | (ctx.encrypt ? TPMA_SESSION.encrypt : 0);
    const cp = createHash(this.node).update(u32(ctx.code));
    for (const n of ctx.names) cp.update(n);
    const cpHash = cp.update(ctx.params).digest();
    const hmac = createHmac(this.node, this.key)
      .update(cpHash)
      .update(this.nonceCaller)
      .update(this.nonceTPM)
      .update(ctx.nonceDecrypt ?? EMPTY)
      .update(ctx.nonceEncrypt ?? EMPTY)
      .update(Buffer.of(attributes))
      .digest();
    return { sessionHandle: this.handle, nonce: this.nonceCaller, sessionAttributes: attributes, hmac };
  }

  /** Checks HMAC(sessionKey ‖ authValue, rpHash ‖ nonceTPM ‖ nonceCaller ‖ attributes), rpHash = H(0 ‖ commandCode ‖ parameters) (Part 1 §18.8). */
  update(resp: AuthResponse, ctx: ResponseContext): void {
    const rpHash = createHash(this.node).update(u32(0)).update(u32(ctx.code)).update(ctx.params).digest();
    const expected = createHmac(this.node, this.key).update(rpHash).update(resp.nonce).update(this.nonceCaller).update(Buffer.of(resp.sessionAttributes)).digest();
    if (resp.hmac.length !== expected.length || !timingSafeEqual(resp.hmac, expected) || resp.nonce.length !== this.size) {
      throw new TpmTrustError("ERR_TPM_SESSION_INTEGRITY", `the response to command 0x${ctx.code.toString(16)} does not carry the session's HMAC`, { commandCode: ctx.code });
    }
    this.nonceTPM = resp.nonce;
  }

  /** AES-CFB with key ‖ IV = KDFa(hashAlg, sessionKey ‖ authValue, "CFB", nonceNewer, nonceOlder, keyBits + 128) (Part 1 §21.4). */
  private cfb(nonceNewer: Buffer, nonceOlder: Buffer): { key: Buffer; iv: Buffer; alg: string } {
    const bits = kdfa(this.hashAlg, this.key, "CFB", nonceNewer, nonceOlder, this.keyBits + 128);
    return { key: bits.subarray(0, this.keyBits / 8), iv: bits.subarray(this.keyBits / 8), alg: `aes-${this.keyBits}-cfb` };
  }

  encryptParameter(data: Buffer): Buffer {
    const { key, iv, alg } = this.cfb(this.nonceCaller, this.nonceTPM);
    const c = createCipheriv(alg, key, iv);
    return Buffer.concat([c.update(data), c.final()]);
  }

  decryptParameter(data: Buffer): Buffer {
    const { key, iv, alg } = this.cfb(this.nonceTPM, this.nonceCaller);
    const d = createDecipheriv(alg, key, iv);
    return Buffer.concat([d.update(data), d.final()]);
  }
}

/**
 * TPM2_StartAuthSession of an HMAC session salted to the loaded key `tpmKey` (RSA-OAEP or ECDH to
 * its public area, label "SECRET"), unbound, with AES-128-CFB parameter encryption and SHA-256.
 */
export async function startSaltedSession(client: TpmClient, tpmKey: { handle: number; public: TpmtPublic }, opts: { hashAlg?: number; authValue?: Buffer } = {}): Promise<HmacSession> {
  const hashAlg = opts.hashAlg ?? TPM_ALG.SHA256;
  const { size } = hashAlgorithm(hashAlg);
  const { seed: salt, encryptedSecret } = shareSeed(tpmKey.public, "SECRET", client.random);
  const nonceCaller = client.random(size);
  const symmetric = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
  const { handle, nonceTPM } = await client.run(StartAuthSession, {
    tpmKey: tpmKey.handle,
    nonceCaller,
    encryptedSalt: encryptedSecret,
    sessionType: TPM_SE.HMAC,
    symmetric,
    authHash: hashAlg,
  });
  const sessionKey = kdfa(hashAlg, salt, "ATH", nonceTPM, nonceCaller, size * 8);
  return new HmacSession(handle, hashAlg, sessionKey, nonceTPM, 128, opts.authValue);
}

/**
 * Runs `fn` with every secret-carrying command of `client` in a salted session to `tpmKey` (the EK
 * or the SRK), then flushes the session.
 */
export async function withEncryptedSession<T>(client: TpmClient, tpmKey: { handle: number; public: TpmtPublic }, fn: () => Promise<T>): Promise<T> {
  if (client.encryption) return fn();
  const session = await startSaltedSession(client, tpmKey);
  client.encryption = session;
  try {
    return await fn();
  } finally {
    client.encryption = undefined;
    await client.run(FlushContext, { flushHandle: session.handle }).catch(() => undefined);
  }
}
