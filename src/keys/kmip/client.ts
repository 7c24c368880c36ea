/**
 * A KMIP 1.4 client over mutual TLS (KMIP 1.4 §8 and the KMIP Profiles' TLS authentication suites):
 * one connection per key server, kept open, one request at a time. Requests carry one batch item
 * (§7.1); a failed operation is a TpmTrustError that names the Result Reason.
 */
import { connect, type TLSSocket } from "node:tls";
import { isIP } from "node:net";
import { TpmTrustError } from "../../errors.js";
import { REASON, RESULT_SUCCESS, TAG } from "./constants.js";
import { decodeTtlv, encodeTtlv, enumeration, field, int, messageLength, required, struct, type TtlvItem } from "./ttlv.js";

export interface KmipEndpoint {
  host: string;
  port: number;
  /** PEM: the CA that issued the key server's certificate */
  ca: Buffer;
  /** PEM: this client's certificate and key */
  cert: Buffer;
  key: Buffer;
  /** how long one request may take, connection included (default 15 s) */
  timeoutMs?: number;
}

const PROTOCOL = { major: 1, minor: 4 };

const unavailable = (message: string, details: Record<string, unknown> = {}) => new TpmTrustError("ERR_KEY_SERVER_UNAVAILABLE", message, details);

/** A KMIP operation the server answered with a failure. */
export class KmipOperationError extends TpmTrustError {
  constructor(
    readonly operation: number,
    readonly reason: number | undefined,
    message: string,
  ) {
    super("ERR_KEY_SERVER_REFUSED", message, { operation, ...(reason !== undefined ? { resultReason: reason } : {}) });
  }
}

export class KmipClient {
  private socket: TLSSocket | undefined;
  private connecting: Promise<TLSSocket> | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly ep: KmipEndpoint) {}

  /** Sends one operation with its request payload items; returns the response payload. */
  call(operation: number, payload: TtlvItem[]): Promise<TtlvItem> {
    const run = this.tail.then(() => this.exchange(operation, payload));
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.socket?.destroy();
    this.socket = undefined;
  }

  private where(): string {
    return `${this.ep.host}:${this.ep.port}`;
  }

  private open(): Promise<TLSSocket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<TLSSocket>((resolve, reject) => {
      const s = connect({
        host: this.ep.host,
        port: this.ep.port,
        ca: this.ep.ca,
        cert: this.ep.cert,
        key: this.ep.key,
        minVersion: "TLSv1.2",
        ...(isIP(this.ep.host) ? {} : { servername: this.ep.host }),
      });
      const fail = (e: Error) => {
        s.destroy();
        reject(unavailable(`the KMIP server ${this.where()} could not be reached: ${e.message}`, { keyServer: this.where(), reason: (e as { code?: string }).code ?? "tls" }));
      };
      s.once("error", fail);
      s.setTimeout(this.ep.timeoutMs ?? 15_000, () => fail(new Error("timed out connecting")));
      s.once("secureConnect", () => {
        s.off("error", fail);
        s.setTimeout(0);
        s.on("error", () => s.destroy());
        this.socket = s;
        resolve(s);
      });
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async exchange(operation: number, payload: TtlvItem[]): Promise<TtlvItem> {
    if (this.closed) throw unavailable(`the KMIP client for ${this.where()} is closed`);
    const socket = await this.open();
    const request = encodeTtlv(
      struct(
        TAG.RequestMessage,
        struct(TAG.RequestHeader, struct(TAG.ProtocolVersion, int(TAG.ProtocolVersionMajor, PROTOCOL.major), int(TAG.ProtocolVersionMinor, PROTOCOL.minor)), int(TAG.BatchCount, 1)),
        struct(TAG.BatchItem, enumeration(TAG.Operation, operation), struct(TAG.RequestPayload, ...payload)),
      ),
    );
    const response = await this.roundTrip(socket, request);
    return this.payloadOf(decodeTtlv(response), operation);
  }

  /** Writes a request and reads one whole response message (8-byte TTLV header, then its length). */
  private roundTrip(socket: TLSSocket, request: Buffer): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let chunks: Buffer[] = [];
      let have = 0;
      let want = -1;
      const done = (e: Error | undefined, msg?: Buffer) => {
        socket.off("data", onData);
        socket.off("close", onClose);
        clearTimeout(timer);
        if (e) {
          socket.destroy();
          reject(e);
        } else resolve(msg!);
      };
      const onData = (chunk: Buffer) => {
        chunks.push(chunk);
        have += chunk.length;
        try {
          if (want < 0 && have >= 8) want = messageLength(Buffer.concat(chunks));
        } catch (e) {
          return done(e as Error);
        }
        if (want >= 0 && have >= want) {
          const all = Buffer.concat(chunks);
          chunks = [];
          if (all.length > want) return done(unavailable(`the KMIP server ${this.where()} sent more than one response`));
          done(undefined, all);
        }
      };
      const onClose = () => done(unavailable(`the KMIP server ${this.where()} closed the connection`, { keyServer: this.where(), reason: "closed" }));
      socket.on("data", onData);
      socket.on("close", onClose);
      const timer = setTimeout(() => done(unavailable(`the KMIP server ${this.where()} did not answer in time`, { keyServer: this.where(), reason: "timeout" })), this.ep.timeoutMs ?? 15_000);
      socket.write(request);
    });
  }

  private payloadOf(msg: TtlvItem, operation: number): TtlvItem {
    if (msg.tag !== TAG.ResponseMessage) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "the KMIP answer is not a Response Message", { tag: msg.tag });
    const item = msg.type === "structure" ? msg.value.find((c) => c.tag === TAG.BatchItem) : undefined;
    if (!item) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "the KMIP response has no batch item");
    const status = required(item, TAG.ResultStatus, "enumeration");
    if (status !== RESULT_SUCCESS) {
      const reason = field(item, TAG.ResultReason, "enumeration");
      const text = field(item, TAG.ResultMessage, "text");
      if (reason === REASON.AuthenticationNotSuccessful || reason === REASON.PermissionDenied) {
        throw new KmipOperationError(operation, reason, `the KMIP server ${this.where()} denied operation 0x${operation.toString(16)}: ${text ?? "permission denied"}`);
      }
      throw new KmipOperationError(operation, reason, `KMIP operation 0x${operation.toString(16)} failed at ${this.where()}: ${text ?? `result reason 0x${(reason ?? 0).toString(16)}`}`);
    }
    const answered = field(item, TAG.Operation, "enumeration");
    if (answered !== undefined && answered !== operation) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `the KMIP server answered operation 0x${answered.toString(16)} to 0x${operation.toString(16)}`);
    return item.type === "structure" ? (item.value.find((c) => c.tag === TAG.ResponsePayload) ?? struct(TAG.ResponsePayload)) : struct(TAG.ResponsePayload);
  }
}
