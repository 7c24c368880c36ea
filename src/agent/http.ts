/**
 * The agent's side of the HTTP API (docs/api.md): JSON over HTTP(S), problem+json errors turned
 * back into TpmTrustError with the service's code. Only node:http/https, so a private CA
 * (`--ca-cert`) can be trusted for this connection alone.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { ERROR_CODES, isErrorCode, TpmTrustError } from "../errors.js";

export interface ServiceOptions {
  /** base URL, e.g. https://attest.example:7443 */
  url: string;
  /** PEM CA certificate(s) to trust for an https URL instead of the system store */
  ca?: Buffer;
  timeoutMs?: number;
  /** bearer token for calls that need one */
  token?: string;
}

/** Largest answer the agent reads (the biggest is an attestation verdict with its diff). */
const MAX_RESPONSE = 4 << 20;

function unreachable(message: string, details?: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError("ERR_UNREACHABLE", message, details);
}

/** The target of a `Link` header's rel="next" (RFC 8288 §3), if any. */
export function nextLink(link: string | string[] | undefined): string | undefined {
  for (const part of [link ?? []].flat().join(",").split(",")) {
    const m = /^\s*<([^>]*)>\s*;\s*rel="?next"?\s*$/i.exec(part);
    if (m) return m[1];
  }
  return undefined;
}

export class ServiceClient {
  readonly base: URL;
  private readonly ca?: Buffer;
  private readonly timeoutMs: number;
  private readonly token?: string;

  constructor(o: ServiceOptions) {
    let base: URL;
    try {
      base = new URL(o.url);
    } catch {
      throw new TpmTrustError("ERR_USAGE", `--server must be an http(s) URL, got ${JSON.stringify(o.url)}`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") throw new TpmTrustError("ERR_USAGE", `--server must be an http(s) URL, got ${JSON.stringify(o.url)}`);
    if (o.ca && base.protocol !== "https:") throw new TpmTrustError("ERR_USAGE", "--ca-cert needs an https:// --server");
    this.base = base;
    this.ca = o.ca;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.token = o.token;
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>("POST", path, body);
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  /** One request; 2xx answers are parsed JSON, problem+json answers become the service's error. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = this.urlOf(path);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: "application/json, application/problem+json" };
    if (payload) headers["content-type"] = "application/json";
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const { status, type, text } = await this.send(url, method, headers, payload);
    let json: unknown;
    try {
      json = text.length ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (status >= 200 && status < 300) {
      if (json === undefined && text.length) throw unreachable(`${method} ${url.pathname}: the answer is not JSON`, { status });
      return json as T;
    }
    const p = json as { code?: string; detail?: string; details?: Record<string, unknown> } | undefined;
    if (type.startsWith("application/problem+json") && p && isErrorCode(p.code)) {
      throw new TpmTrustError(p.code, p.detail ?? ERROR_CODES[p.code], { status, ...(p.details ?? {}) });
    }
    throw unreachable(`${method} ${url.pathname}: HTTP ${status} without a tpmtrust problem document`, { status });
  }

  /** One request with the bearer token, answered whatever its status, with its next page (RFC 8288 `Link: <…>; rel="next"`) if any. */
  async request(method: string, path: string, body?: unknown): Promise<{ status: number; type: string; text: string; next?: string }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: "application/json, application/problem+json" };
    if (payload) headers["content-type"] = "application/json";
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return this.send(this.urlOf(path), method, headers, payload);
  }

  private urlOf(path: string): URL {
    return new URL(path.replace(/^\//, ""), this.base.href.endsWith("/") ? this.base : `${this.base.href}/`);
  }

  /**
   * One request with extra headers, answered whatever its status: for protocols with their own
   * error shapes (the DPS device API). `json` is undefined when the answer is empty or not JSON.
   */
  async exchange(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<{ status: number; json: unknown; retryAfter?: number }> {
    const url = this.urlOf(path);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: "application/json", ...(payload ? { "content-type": "application/json" } : {}), ...extraHeaders };
    const { status, text, retryAfter } = await this.send(url, method, headers, payload);
    let json: unknown;
    try {
      json = text.length ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status, json, ...(retryAfter !== undefined ? { retryAfter } : {}) };
  }

  private send(url: URL, method: string, headers: Record<string, string>, payload?: Buffer): Promise<{ status: number; type: string; text: string; retryAfter?: number; next?: string }> {
    return new Promise((resolve, reject) => {
      const opts = { method, headers: payload ? { ...headers, "content-length": String(payload.length) } : headers, timeout: this.timeoutMs };
      const onResponse = (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE) {
            res.destroy();
            reject(unreachable(`${method} ${url.pathname}: the answer exceeds ${MAX_RESPONSE} bytes`));
          } else chunks.push(c);
        });
        res.on("end", () => {
          const retryAfter = Number(res.headers["retry-after"]);
          const next = nextLink(res.headers.link);
          resolve({
            ...(next !== undefined ? { next } : {}),
            status: res.statusCode ?? 0,
            type: String(res.headers["content-type"] ?? ""),
            text: Buffer.concat(chunks).toString("utf8"),
            ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfter } : {}),
          });
        });
        res.on("error", (e) => reject(unreachable(`${method} ${url.pathname}: ${e.message}`)));
      };
      const req = url.protocol === "https:" ? httpsRequest(url, { ...opts, ...(this.ca ? { ca: this.ca } : {}) }, onResponse) : httpRequest(url, opts, onResponse);
      req.on("timeout", () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on("error", (e: NodeJS.ErrnoException) => reject(unreachable(`${this.base.origin} is unreachable: ${e.message}`, { url: url.href, ...(e.code ? { errno: e.code } : {}) })));
      req.end(payload);
    });
  }
}
