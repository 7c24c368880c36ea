import { TpmTrustError } from "../../errors.js";

/** Sends one marshalled TPM command and returns the TPM's whole response. */
export interface Transport {
  send(command: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

/** Part 3 §5.1: tag u16 ‖ size u32 ‖ commandCode/responseCode u32. */
export const HEADER_SIZE = 10;
/** Upper bound for commands and responses; real TPMs stay at 4 KiB (TPM_PT_MAX_RESPONSE_SIZE). */
export const MAX_MESSAGE_SIZE = 64 * 1024;
export const DEFAULT_TIMEOUT_MS = 120_000;

// Part 2 §6.9 TPM_ST: a TPM answers with NO_SESSIONS / SESSIONS, or RSP_COMMAND for a bad tag.
const RESPONSE_TAGS = new Set([0x8001, 0x8002, 0x00c4]);

export function transportError(message: string, details?: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError("ERR_TPM_TRANSPORT", message, details);
}

/** Checks a command's header: at least 10 bytes, size field = length, within bounds. */
export function checkCommand(command: Buffer): void {
  if (command.length < HEADER_SIZE || command.length > MAX_MESSAGE_SIZE) {
    throw transportError(`command of ${command.length} bytes is outside ${HEADER_SIZE}..${MAX_MESSAGE_SIZE}`);
  }
  const size = command.readUInt32BE(2);
  if (size !== command.length) throw transportError(`command size field ${size} differs from its length ${command.length}`);
}

/** Validates a response header and returns the response's total size. */
export function responseSize(header: Buffer): number {
  const tag = header.readUInt16BE(0);
  const size = header.readUInt32BE(2);
  if (!RESPONSE_TAGS.has(tag)) throw transportError(`response tag 0x${tag.toString(16)} is not a TPM response tag`, { tag });
  if (size < HEADER_SIZE || size > MAX_MESSAGE_SIZE) throw transportError(`response size ${size} is outside ${HEADER_SIZE}..${MAX_MESSAGE_SIZE}`, { size });
  return size;
}

/**
 * Reassembles one response from a byte stream: 10 header bytes, then size-10 more. Bytes beyond
 * the announced size are a protocol error (the TPM answers exactly one response per command).
 */
export class ResponseAssembler {
  private chunks: Buffer[] = [];
  private have = 0;
  private total: number | undefined;

  /** Adds received bytes; returns the whole response once complete. */
  push(chunk: Buffer): Buffer | undefined {
    this.chunks.push(chunk);
    this.have += chunk.length;
    if (this.total === undefined && this.have >= HEADER_SIZE) {
      this.total = responseSize(Buffer.concat(this.chunks, this.have).subarray(0, HEADER_SIZE));
    }
    if (this.total === undefined || this.have < this.total) return undefined;
    if (this.have > this.total) throw transportError(`${this.have - this.total} bytes after the ${this.total}-byte response`);
    return Buffer.concat(this.chunks, this.have);
  }

  /** How many more bytes are needed at least (header first). */
  get missing(): number {
    return (this.total ?? HEADER_SIZE) - this.have;
  }
}

/** Runs `fn` with a deadline; on expiry rejects with ERR_TPM_TRANSPORT and calls `onTimeout`. */
export function withTimeout<T>(ms: number, what: string, fn: () => Promise<T>, onTimeout: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout();
      reject(transportError(`${what}: no answer within ${ms} ms`, { timeoutMs: ms }));
    }, ms);
    fn().then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** Serialises calls: one command in flight per transport (a TPM executes one at a time anyway). */
export class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => undefined);
    return p;
  }
}
