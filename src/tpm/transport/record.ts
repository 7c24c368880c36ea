import { readFile, writeFile } from "node:fs/promises";
import { TpmTrustError } from "../../errors.js";
import { checkCommand, transportError, type Transport } from "./transport.js";

/** One command and the TPM's response to it. */
export interface Exchange {
  command: Buffer;
  response: Buffer;
}

/** JSON file: `{"format": RECORDING_FORMAT, "exchanges": [{"command": hex, "response": hex}, …]}`. */
export const RECORDING_FORMAT = "tpmtrust-tpm-recording/1";

export function encodeRecording(exchanges: readonly Exchange[]): string {
  const body = exchanges.map((e) => ({ command: e.command.toString("hex"), response: e.response.toString("hex") }));
  return JSON.stringify({ format: RECORDING_FORMAT, exchanges: body }, null, 1) + "\n";
}

function badFile(message: string, details?: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_FORMAT", `TPM recording: ${message}`, details);
}

function hexField(v: unknown, index: number, field: string): Buffer {
  if (typeof v !== "string" || v.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(v)) throw badFile(`exchanges[${index}].${field} is not a hex string`, { index, field });
  return Buffer.from(v, "hex");
}

export function decodeRecording(text: string): Exchange[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw badFile(`not JSON: ${(e as Error).message}`);
  }
  const d = doc as { format?: unknown; exchanges?: unknown };
  if (typeof doc !== "object" || doc === null || d.format !== RECORDING_FORMAT) throw badFile(`format must be "${RECORDING_FORMAT}"`);
  if (!Array.isArray(d.exchanges)) throw badFile("exchanges must be an array");
  return d.exchanges.map((e: unknown, i) => {
    if (typeof e !== "object" || e === null) throw badFile(`exchanges[${i}] is not an object`, { index: i });
    const x = e as { command?: unknown; response?: unknown };
    return { command: hexField(x.command, i, "command"), response: hexField(x.response, i, "response") };
  });
}

/** Passes commands through to `inner` and keeps every exchange. */
export class RecordingTransport implements Transport {
  readonly exchanges: Exchange[] = [];
  constructor(private readonly inner: Transport) {}

  async send(command: Buffer): Promise<Buffer> {
    const response = await this.inner.send(command);
    this.exchanges.push({ command: Buffer.from(command), response: Buffer.from(response) });
    return response;
  }

  save(path: string): Promise<void> {
    return writeFile(path, encodeRecording(this.exchanges));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Answers from a recording. Each command must equal the next recorded command byte for byte
 * (commands with random parts, e.g. nonceCaller, replay only if the client's randomness was
 * fixed when recording too).
 */
export class ReplayTransport implements Transport {
  private next = 0;
  constructor(private readonly exchanges: readonly Exchange[]) {}

  static async load(path: string): Promise<ReplayTransport> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (e) {
      throw new TpmTrustError("ERR_IO", `cannot read TPM recording ${path}: ${(e as Error).message}`, { path });
    }
    return new ReplayTransport(decodeRecording(text));
  }

  /** Exchanges not yet replayed. */
  get remaining(): number {
    return this.exchanges.length - this.next;
  }

  async send(command: Buffer): Promise<Buffer> {
    checkCommand(command);
    const e = this.exchanges[this.next];
    if (!e) throw transportError(`recording exhausted after ${this.next} exchanges`, { index: this.next });
    if (!e.command.equals(command)) {
      throw transportError(`command ${this.next} differs from the recording`, {
        index: this.next,
        expected: e.command.toString("hex"),
        actual: command.toString("hex"),
      });
    }
    this.next++;
    return Buffer.from(e.response);
  }

  async close(): Promise<void> {}
}
