/** Starts the service on an address: opens the store, builds the app, listens, and shuts down gracefully. */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import pino, { type Logger } from "pino";
import type { FastifyInstance } from "fastify";
import type { AttestConfig } from "../attest/config.js";
import { TpmTrustError } from "../errors.js";
import type { ProvisioningConfig } from "../provisioning/config.js";
import { defaultProvisioningKeyFile, loadProvisioningKey } from "../provisioning/master-key.js";
import { isPostgresUrl, openStore, type Store } from "../store/index.js";
import { buildApp } from "./app.js";
import { closeKeyServers } from "../keys/index.js";

export interface ServeOptions {
  db: string;
  /** host:port; the host defaults to 127.0.0.1, port 0 picks a free one */
  listen?: string;
  tls?: { cert: Buffer; key: Buffer };
  logger?: Logger | false;
  /** where the initial admin token is written on first start (default: beside the SQLite file, or .tpmtrust/) */
  adminTokenFile?: string;
  publicUrl?: string;
  /** attestation service settings (intervals, lifetimes, sweeper) */
  attest?: Partial<AttestConfig>;
  /** the provisioning master key file (default: $TPMTRUST_PROVISIONING_KEY_FILE, beside the SQLite file, or .tpmtrust/) */
  provisioningKeyFile?: string;
  /** device registration API limits */
  provisioning?: Partial<ProvisioningConfig>;
  /** see AppOptions.auditWitnessMs */
  auditWitnessMs?: number;
  /** see AppOptions.auditCheckpointMs */
  auditCheckpointMs?: number;
}

export interface RunningServer {
  app: FastifyInstance;
  store: Store;
  url: string;
  /** the initial admin token file, when this start created one */
  adminTokenFile?: string;
  close(): Promise<void>;
}

export function parseListen(listen = "127.0.0.1:7443"): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen) ?? /^()()(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new TpmTrustError("ERR_USAGE", `--listen must be HOST:PORT (e.g. 127.0.0.1:7443), got "${listen}"`);
  return { host: m[1] || m[2] || "127.0.0.1", port };
}

/** On a store without admin tokens, creates one and writes it to a 0600 file. */
async function initialAdminToken(store: Store, db: string, file?: string): Promise<string | undefined> {
  if ((await store.adminTokens.list()).length > 0) return undefined;
  const path = resolve(file ?? (isPostgresUrl(db) || db === ":memory:" ? join(".tpmtrust", "admin-token") : join(dirname(db), "admin-token")));
  if (existsSync(path)) throw new TpmTrustError("ERR_CONFLICT", `${path} exists but the database has no admin token; remove the file or pass --admin-token-file`);
  const at = Date.now();
  const t = await store.adminTokens.create({ role: "admin", label: "initial", at });
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, t.token + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  await store.audit.append({ actor: "system", action: "admin.token.create", subject: t.id, outcome: "success", details: { role: "admin", label: "initial", file: path }, at });
  return path;
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const { host, port } = parseListen(o.listen);
  const logger = o.logger === undefined ? pino({ level: process.env.TPMTRUST_LOG_LEVEL ?? "info" }, pino.destination(2)) : o.logger;
  const store = await openStore(o.db, { backgroundCheckpointMs: 200 });
  let app: FastifyInstance | undefined;
  try {
    const adminTokenFile = await initialAdminToken(store, o.db, o.adminTokenFile);
    const pk = loadProvisioningKey(o.provisioningKeyFile ?? defaultProvisioningKeyFile(o.db));
    app = await buildApp({ store, logger, https: o.tls, publicUrl: o.publicUrl, attest: o.attest, provisioning: { masterKey: pk.key, config: o.provisioning }, auditWitnessMs: o.auditWitnessMs, auditCheckpointMs: o.auditCheckpointMs });
    await app.listen({ host, port });
    const addr = app.server.address();
    const bound = typeof addr === "object" && addr ? addr.port : port;
    const url = `${o.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${bound}`;
    const server = app;
    return {
      app: server,
      store,
      url,
      adminTokenFile,
      async close() {
        await server.close();
        await closeKeyServers(store); // e.g. PKCS#11 sessions
        await store.close();
      },
    };
  } catch (e) {
    await app?.close().catch(() => undefined);
    await store.close();
    if ((e as NodeJS.ErrnoException).code === "EADDRINUSE") throw new TpmTrustError("ERR_IO", `${host}:${port} is already in use`);
    throw e;
  }
}
