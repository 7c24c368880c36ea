import { connect, type Socket } from "node:net";
import { checkCommand, DEFAULT_TIMEOUT_MS, Queue, ResponseAssembler, transportError, withTimeout, type Transport } from "./transport.js";

export interface SwtpmTransportOptions {
  host?: string;
  /** data port (swtpm --server) */
  port: number;
  /** control port (swtpm --ctrl); swtpm's TCTI convention is port + 1 */
  ctrlPort?: number;
  timeoutMs?: number;
}

// swtpm's control channel (swtpm tpm_ioctl.h): u32 BE command code ‖ payload -> u32 BE result.
const CMD_INIT = 2;
const CMD_SET_LOCALITY = 5;

/**
 * swtpm's TCP socket interface. The data port carries raw TPM commands without framing. Like the
 * tpm2-tss swtpm TCTI, each command gets its own connection, so other clients (tpm2-tools) can
 * take turns on the same swtpm. swtpm does not reassemble a command split over several reads,
 * so each command goes out in one write.
 */
export class SwtpmTransport implements Transport {
  readonly host: string;
  readonly port: number;
  readonly ctrlPort: number;
  private readonly timeoutMs: number;
  private readonly queue = new Queue();
  private closed = false;

  constructor(opts: SwtpmTransportOptions) {
    this.host = opts.host ?? "127.0.0.1";
    this.port = opts.port;
    this.ctrlPort = opts.ctrlPort ?? opts.port + 1;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async send(command: Buffer): Promise<Buffer> {
    checkCommand(command);
    return this.queue.run(() => {
      const assembler = new ResponseAssembler();
      return this.exchange(this.port, command, (chunk) => assembler.push(chunk), () => assembler.missing);
    });
  }

  /** Powers the TPM on (CMD_INIT) when swtpm was started without `--flags startup-*`; TPM2_Startup must follow. */
  async init(): Promise<void> {
    const req = Buffer.alloc(8);
    req.writeUInt32BE(CMD_INIT, 0); // flags u32 = 0: keep the volatile state
    await this.control(req, "CMD_INIT");
  }

  /** Sets the locality of the following commands (CMD_SET_LOCALITY). */
  async setLocality(locality: number): Promise<void> {
    if (!Number.isInteger(locality) || locality < 0 || locality > 4) throw transportError(`locality ${locality} is not 0..4`);
    const req = Buffer.alloc(5);
    req.writeUInt32BE(CMD_SET_LOCALITY, 0);
    req.writeUInt8(locality, 4);
    await this.control(req, "CMD_SET_LOCALITY");
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private async control(request: Buffer, what: string): Promise<void> {
    const resp = await this.queue.run(() => {
      const got: Buffer[] = [];
      let have = 0;
      const push = (chunk: Buffer) => {
        got.push(chunk);
        have += chunk.length;
        if (have > 4) throw transportError(`${what}: ${have} bytes where a 4-byte result was expected`);
        return have === 4 ? Buffer.concat(got) : undefined;
      };
      return this.exchange(this.ctrlPort, request, push, () => 4 - have);
    });
    const result = resp.readUInt32BE(0);
    if (result !== 0) throw transportError(`${what} failed: swtpm control result 0x${result.toString(16)}`, { result });
  }

  /** One connection: connect, one write, read until `push` returns the whole answer, close. */
  private exchange(port: number, request: Buffer, push: (chunk: Buffer) => Buffer | undefined, missing: () => number): Promise<Buffer> {
    if (this.closed) return Promise.reject(transportError("transport is closed"));
    const where = `swtpm ${this.host}:${port}`;
    let socket: Socket | undefined;
    return withTimeout(
      this.timeoutMs,
      where,
      () =>
        new Promise<Buffer>((resolve, reject) => {
          let done = false;
          const finish = (err: Error | undefined, value?: Buffer) => {
            if (done) return;
            done = true;
            socket?.destroy();
            if (err) reject(err);
            else resolve(value!);
          };
          socket = connect({ host: this.host, port, noDelay: true });
          socket.once("connect", () => socket!.write(request));
          socket.on("data", (chunk: Buffer) => {
            try {
              const whole = push(chunk);
              if (whole) finish(undefined, whole);
            } catch (e) {
              finish(e as Error);
            }
          });
          socket.once("error", (e) => finish(transportError(`${where}: ${e.message}`, { host: this.host, port })));
          socket.once("close", () => finish(transportError(`${where}: connection closed with ${missing()} bytes of the answer missing`, { host: this.host, port })));
        }),
      () => socket?.destroy(),
    );
  }
}
