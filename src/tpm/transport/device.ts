import { close as fsClose, constants, open as fsOpen, read as fsRead, write as fsWrite } from "node:fs";
import { checkCommand, DEFAULT_TIMEOUT_MS, MAX_MESSAGE_SIZE, Queue, ResponseAssembler, transportError, withTimeout, type Transport } from "./transport.js";

export interface DeviceTransportOptions {
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A TPM character device (/dev/tpmrm0 with the kernel resource manager, /dev/tpm0 without): the
 * whole command in one write(), then read() the response (Linux tpm-dev: one command at a time,
 * a short read leaves the rest for the next read). Also usable on any already-open descriptor
 * speaking the same protocol (e.g. `swtpm chardev --fd N`); EAGAIN from a non-blocking
 * descriptor is polled.
 */
export class DeviceTransport implements Transport {
  private readonly queue = new Queue();
  private readonly timeoutMs: number;
  private broken: string | undefined;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly label: string,
    /** whether close() closes the descriptor */
    private readonly owned: boolean,
    opts: DeviceTransportOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  static open(path: string, opts: DeviceTransportOptions = {}): Promise<DeviceTransport> {
    return new Promise((resolve, reject) => {
      fsOpen(path, constants.O_RDWR, (err, fd) => {
        if (err) reject(transportError(`cannot open TPM device ${path}: ${err.message}`, { path, errno: err.code }));
        else resolve(new DeviceTransport(fd, path, true, opts));
      });
    });
  }

  /** Borrows a descriptor that is already open; its owner closes it, not close(). */
  static fromFd(fd: number, label: string, opts: DeviceTransportOptions = {}): DeviceTransport {
    return new DeviceTransport(fd, label, false, opts);
  }

  async send(command: Buffer): Promise<Buffer> {
    checkCommand(command);
    return this.queue.run(() => {
      if (this.closed) return Promise.reject(transportError(`${this.label}: transport is closed`));
      if (this.broken) return Promise.reject(transportError(`${this.label}: unusable after an earlier failure: ${this.broken}`));
      const op = this.exchange(command);
      return withTimeout(this.timeoutMs, this.label, () => op, () => {
        // The pending read/write still holds the descriptor: close it only once that settles.
        this.broken = `no answer within ${this.timeoutMs} ms`;
        if (this.owned) void op.catch(() => undefined).finally(() => this.closeFd());
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.run(async () => {
      if (this.owned && !this.broken) await this.closeFd();
    });
  }

  private closeFd(): Promise<void> {
    return new Promise((resolve) => fsClose(this.fd, () => resolve()));
  }

  private async exchange(command: Buffer): Promise<Buffer> {
    const written = await this.io("write", (cb) => fsWrite(this.fd, command, 0, command.length, null, cb));
    if (written !== command.length) throw transportError(`${this.label}: wrote ${written} of ${command.length} bytes; the command must go in one write`);
    const assembler = new ResponseAssembler();
    const buf = Buffer.alloc(MAX_MESSAGE_SIZE);
    for (;;) {
      const n = await this.io("read", (cb) => fsRead(this.fd, buf, 0, buf.length, null, cb));
      if (n === 0) throw transportError(`${this.label}: no response (read returned 0 with ${assembler.missing} bytes missing)`);
      const whole = assembler.push(Buffer.from(buf.subarray(0, n)));
      if (whole) return whole;
    }
  }

  /** One read()/write(), repeated while a non-blocking descriptor answers EAGAIN. */
  private async io(op: string, call: (cb: (e: NodeJS.ErrnoException | null, n: number) => void) => void): Promise<number> {
    for (let wait = 1; ; wait = Math.min(wait * 2, 10)) {
      try {
        return await new Promise<number>((resolve, reject) => call((e, n) => (e ? reject(e) : resolve(n))));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "EAGAIN") throw transportError(`${this.label}: ${op} failed: ${(e as Error).message}`, { errno: code });
        await sleep(wait);
      }
    }
  }
}
