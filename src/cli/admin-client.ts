/**
 * One way for every admin command to reach the service's state: an AdminClient that makes the
 * REST calls of docs/api.md. With `--server URL` (or $TPMTRUST_SERVER) and `--token` (or
 * $TPMTRUST_TOKEN) they go over HTTP(S) to the running service, which opens its own database and key
 * servers; without, the same routes run in-process (never listening) over the local database
 * (`--db`, $TPMTRUST_DB), as the bootstrap on the service's machine, audited with actor "cli".
 * Either way the answer is the route's JSON and a refusal is the route's TpmTrustError.
 */
import { type Command, Option } from "commander";
import { ServiceClient } from "../agent/http.js";
import { ERROR_CODES, isErrorCode, TpmTrustError } from "../errors.js";
import { closeKeyServers } from "../keys/index.js";
import { buildApp } from "../server/app.js";
import { openStore, resolveDbUrl } from "../store/index.js";
import { readInput } from "./files.js";
import { DB_OPTION_HELP } from "./store.js";

export interface AdminClient {
  /** One REST call: the 2xx answer's JSON (undefined when empty), else the service's error. */
  call<T>(method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T>;
  /** where the calls go: the service's URL, or "local" */
  readonly where: string;
}

export interface AdminOptions {
  db?: string;
  server?: string;
  token?: string;
  caCert?: string;
}

const SERVER_ENV = "TPMTRUST_SERVER";
const TOKEN_ENV = "TPMTRUST_TOKEN";

/** The options every admin command takes: where to administer. */
export function adminOptions(c: Command): Command {
  return c
    .addOption(new Option("--server <url>", `administer the running service at this URL over its REST API (default $${SERVER_ENV}; without: the local database)`))
    .addOption(new Option("--token <token>", `the admin API token for --server (default $${TOKEN_ENV})`))
    .addOption(new Option("--ca-cert <file>", "PEM CA certificate to trust for an https --server"))
    .addOption(new Option("--db <url>", `${DB_OPTION_HELP}; without --server only`));
}

class HttpAdmin implements AdminClient {
  constructor(
    private readonly svc: ServiceClient,
    readonly where: string,
  ) {}
  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.svc.call<T>(method, path, body);
  }
}

/** Runs `fn` with the client the options name; local mode opens the store and closes it (and its key servers) after. */
export async function withAdmin<T>(o: AdminOptions, fn: (c: AdminClient) => Promise<T>, opts: { mustExist?: boolean } = {}): Promise<T> {
  const server = o.server ?? process.env[SERVER_ENV];
  if (server) {
    if (o.db !== undefined) throw new TpmTrustError("ERR_USAGE", "--db is for the local database; with --server the service uses its own");
    const token = o.token ?? process.env[TOKEN_ENV];
    if (!token) throw new TpmTrustError("ERR_USAGE", `--server needs an admin API token: --token or $${TOKEN_ENV} (tpmtrust admin token create --role admin --name NAME, on the service's machine)`);
    const svc = new ServiceClient({ url: server, token, ...(o.caCert ? { ca: readInput(o.caCert, "--ca-cert") } : {}) });
    return fn(new HttpAdmin(svc, svc.base.origin));
  }
  if (o.token !== undefined) throw new TpmTrustError("ERR_USAGE", `--token goes with --server (or $${SERVER_ENV})`);
  const store = await openStore(resolveDbUrl(o.db), opts);
  try {
    const app = await buildApp({ store, logger: false, attest: { sweepMs: 0 }, auditWitnessMs: 0, inProcess: { kind: "admin", role: "admin", tokenId: "local", actor: "cli" } });
    try {
      return await fn({
        where: "local",
        async call<T>(method: string, path: string, body?: unknown): Promise<T> {
          const r = await app.inject({ method: method as "GET", url: path, ...(body !== undefined ? { payload: body as object } : {}) });
          const json = r.body.length ? (JSON.parse(r.body) as unknown) : undefined;
          if (r.statusCode >= 200 && r.statusCode < 300) return json as T;
          const p = json as { code?: string; detail?: string; details?: Record<string, unknown> } | undefined;
          if (p && isErrorCode(p.code)) throw new TpmTrustError(p.code, p.detail ?? ERROR_CODES[p.code], p.details);
          throw new TpmTrustError("ERR_INTERNAL", `${method} ${path}: HTTP ${r.statusCode}`);
        },
      });
    } finally {
      await app.close();
    }
  } finally {
    await closeKeyServers(store).catch(() => undefined);
    await store.close();
  }
}

/** A path segment, escaped. */
export const seg = (s: string | number): string => encodeURIComponent(String(s));
