/**
 * One way for every admin command to reach the service's state: an AdminClient that makes the
 * REST calls of docs/api.md. With `--server URL` (or $TPMTRUST_SERVER) and `--token` (or
 * $TPMTRUST_TOKEN) they go over HTTP(S) to the running service, which opens its own database and key
 * servers; without, the same routes run in-process (never listening) over the local database
 * (`--db`, $TPMTRUST_DB), as the bootstrap on the service's machine, audited with actor "cli".
 * Either way the answer is the route's JSON and a refusal is the route's TpmTrustError.
 */
import { type Command, Option } from "commander";
import { nextLink, ServiceClient } from "../agent/http.js";
import { ERROR_CODES, isErrorCode, TpmTrustError } from "../errors.js";
import { closeKeyServers } from "../keys/index.js";
import { buildApp } from "../server/app.js";
import { openStore, resolveDbUrl } from "../store/index.js";
import { readInput } from "./files.js";
import { action, printJson } from "./run.js";
import { DB_OPTION_HELP } from "./store.js";

export interface AdminClient {
  /** One REST call: the 2xx answer's JSON (undefined when empty), else the service's error. */
  call<T>(method: Method, path: string, body?: unknown): Promise<T>;
  /** As call, with the answer's status (201 created, 200 already there). */
  exchange<T>(method: Method, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** A paged list route (src/server/paging.ts): its pages in order, followed by their Link headers, up to `max` items; `field`: the answers hold the items under this key. */
  list<T>(path: string, o?: { max?: number; field?: string }): Promise<T[]>;
  /** A GET whose answer is text, not JSON (a PEM chain). */
  text(path: string): Promise<string>;
  /** where the calls go: the service's URL, or the local database's location */
  readonly where: string;
  /** true when the routes run in-process over the local database (file paths are this machine's) */
  readonly local: boolean;
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
/** One answer, whatever its status, as either transport gives it. */
interface Raw {
  status: number;
  type: string;
  text: string;
  next?: string;
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

/** A command that runs on the service's machine only: says so in its help and refuses --server (and $TPMTRUST_SERVER is not read). */
export function localOnly(c: Command, why: string): Command {
  return c.description(`${c.description()} (${why}: on the service's machine only, never with --server)`).addOption(new Option("--server <url>").hideHelp().argParser((): never => {
    throw new TpmTrustError("ERR_USAGE", `tpmtrust ${c.parent?.name() === "tpmtrust" ? "" : `${c.parent?.name()} `}${c.name()} ${why}: run it on the service's machine, without --server`);
  }));
}

/** The answer's JSON, or the error its problem+json names (ERR_UNREACHABLE when it names none). */
function answer<T>(r: Raw, method: string, path: string): T {
  let json: unknown;
  try {
    json = r.text.length ? (JSON.parse(r.text) as unknown) : undefined;
  } catch {
    json = undefined;
  }
  if (r.status >= 200 && r.status < 300) {
    if (json === undefined && r.text.length) throw new TpmTrustError("ERR_UNREACHABLE", `${method} ${path}: the answer is not JSON`, { status: r.status });
    return json as T;
  }
  const p = json as { code?: string; detail?: string; details?: Record<string, unknown> } | undefined;
  if (r.type.startsWith("application/problem+json") && p && isErrorCode(p.code)) throw new TpmTrustError(p.code, p.detail ?? ERROR_CODES[p.code], { status: r.status, ...(p.details ?? {}) });
  throw new TpmTrustError("ERR_UNREACHABLE", `${method} ${path}: HTTP ${r.status} without a tpmtrust problem document`, { status: r.status });
}

/** The client over one transport: the same calls, pages and errors for the service and the local database. */
function client(send: (method: Method, path: string, body?: unknown) => Promise<Raw>, where: string, local: boolean): AdminClient {
  return {
    where,
    local,
    async call<T>(method: Method, path: string, body?: unknown) {
      return answer<T>(await send(method, path, body), method, path);
    },
    async exchange<T>(method: Method, path: string, body?: unknown) {
      const r = await send(method, path, body);
      return { status: r.status, body: answer<T>(r, method, path) };
    },
    async list<T>(path: string, { max = Infinity, field }: { max?: number; field?: string } = {}) {
      const out: T[] = [];
      for (let next: string | undefined = path; next !== undefined && out.length < max; ) {
        const r: Raw = await send("GET", next);
        const page = answer<T[] | Record<string, T[]>>(r, "GET", path);
        out.push(...(field === undefined ? (page as T[]) : (page as Record<string, T[]>)[field]));
        next = r.next;
      }
      return out.slice(0, max);
    },
    async text(path: string) {
      const r = await send("GET", path);
      if (r.status >= 200 && r.status < 300) return r.text;
      return answer<never>(r, "GET", path);
    },
  };
}

/** Runs `fn` with the client the options name; local mode opens the store and closes it (and its key servers) after. */
export async function withAdmin<T>(o: AdminOptions, fn: (c: AdminClient) => Promise<T>, opts: { mustExist?: boolean } = {}): Promise<T> {
  const server = o.server ?? process.env[SERVER_ENV];
  if (server) {
    if (o.db !== undefined) throw new TpmTrustError("ERR_USAGE", "--db is for the local database; with --server the service uses its own");
    const token = o.token ?? process.env[TOKEN_ENV];
    if (!token) throw new TpmTrustError("ERR_USAGE", `--server needs an admin API token: --token or $${TOKEN_ENV} (tpmtrust admin token create --role admin --name NAME, on the service's machine)`);
    const svc = new ServiceClient({ url: server, token, ...(o.caCert ? { ca: readInput(o.caCert, "--ca-cert") } : {}) });
    return fn(client((m, p, b) => svc.request(m, p, b), svc.base.origin, false));
  }
  if (o.token !== undefined) throw new TpmTrustError("ERR_USAGE", `--token goes with --server (or $${SERVER_ENV})`);
  const store = await openStore(resolveDbUrl(o.db), opts);
  try {
    const app = await buildApp({ store, logger: false, attest: { sweepMs: 0 }, auditWitnessMs: 0, auditCheckpointMs: 0, inProcess: { kind: "admin", role: "admin", tokenId: "local", actor: "cli", local: true } });
    try {
      const inject = async (method: Method, url: string, body?: unknown): Promise<Raw> => {
        const r = await app.inject({ method, url, ...(body !== undefined ? { payload: body as object } : {}) });
        const next = nextLink(r.headers.link as string | undefined);
        return { status: r.statusCode, type: String(r.headers["content-type"] ?? ""), text: r.body, ...(next !== undefined ? { next } : {}) };
      };
      return await fn(client(inject, store.location, true));
    } finally {
      await app.close();
    }
  } finally {
    await closeKeyServers(store).catch(() => undefined);
    await store.close();
  }
}

/** What an admin command prints: JSON with --json, else `print`'s text; either may give the exit code. */
export interface AdminCommand<T, O> {
  /** checks and reads local files before anything is opened or sent */
  prepare?: (args: string[], o: O) => void;
  /** the command's REST calls */
  run: (c: AdminClient, args: string[], o: O) => Promise<T>;
  /** the text output; what it returns, if a number, is the exit code */
  print: (v: T, o: O) => unknown;
  /** the exit code of a --json run (default 0) */
  exit?: (v: T) => number;
  /** the command's own options */
  options?: (c: Command) => Command;
  /** no --json option (the output is already JSON, or there is none) */
  noJson?: boolean;
  /** local mode: the database must exist (a read) */
  mustExist?: boolean;
}

/**
 * One admin subcommand, described once: positional arguments and options go to `run`, which makes
 * its REST calls through the client the options name (the service with --server, else the local
 * database in-process); the answer is printed as JSON with --json, else by `print`.
 */
export function adminCommand<T, O extends AdminOptions & { json?: boolean } = AdminOptions & { json?: boolean }>(parent: Command, usage: string, description: string, spec: AdminCommand<T, O>): Command {
  const cmd = adminOptions((spec.options ?? ((c) => c))(parent.command(usage).description(description)));
  if (!spec.noJson) cmd.option("--json", "print JSON");
  return cmd.action(
    action((...a: unknown[]) => {
      const o = a[a.length - 2] as O;
      const args = a.slice(0, -2) as string[];
      spec.prepare?.(args, o);
      return withAdmin(
        o,
        async (c) => {
          const v = await spec.run(c, args, o);
          if (!o.json) {
            const code = spec.print(v, o);
            return typeof code === "number" ? code : undefined;
          }
          printJson(v ?? null);
          return spec.exit?.(v) ?? 0;
        },
        { mustExist: spec.mustExist },
      );
    }),
  );
}

/** A path segment, escaped. */
export const seg = (s: string | number): string => encodeURIComponent(String(s));
