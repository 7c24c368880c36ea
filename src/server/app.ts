/**
 * The HTTP service: fastify with strict validation (no coercion, no silent stripping), body limits,
 * problem+json errors, admin-token auth, an OpenAPI document at /openapi.json, and one route
 * module per area. Binding, TLS and shutdown are the caller's (see src/cli/commands/serve.ts).
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from "fastify";
import swagger from "@fastify/swagger";
import type { Logger } from "pino";
import { attestConfig, type AttestConfig } from "../attest/config.js";
import { startMonitor, type Monitor } from "../attest/health.js";
import type { ProvisioningOptions } from "../provisioning/config.js";
import type { Store } from "../store/index.js";
import { installAuth, type Principal } from "./auth.js";
import { installMetrics, metrics } from "./metrics.js";
import { installPaging } from "./paging.js";
import { errorHandler, problem, sendProblem } from "./problem.js";
import { routeModules } from "./routes/index.js";

export interface AppOptions {
  store: Store;
  logger?: Logger | false;
  /** clock in ms since the epoch (tests inject one) */
  now?: () => number;
  https?: { cert: Buffer; key: Buffer };
  /** the public base URL of this service, for links in documents (default: from the request) */
  publicUrl?: string;
  bodyLimit?: number;
  /** attestation service settings (intervals, lifetimes, sweeper) */
  attest?: Partial<AttestConfig>;
  /** device registration API: master key and limits (src/provisioning/config.ts) */
  provisioning?: ProvisioningOptions;
  /**
   * Never set by `serve`: the CLI's local mode drives the routes in-process (app.inject, never
   * listening) over the local database, every admin request as this principal.
   */
  inProcess?: Principal;
  /** how often the audit head is written to the log, an anchor kept outside the database (default 10 min; 0: never) */
  auditWitnessMs?: number;
  /** how often entries committed since the last checkpoint are integrated and a new checkpoint signed (default 5 s; 0: never) */
  auditCheckpointMs?: number;
}

/** What every route module gets. */
export interface RouteDeps {
  store: Store;
  now: () => number;
  publicUrl?: string;
  attest: AttestConfig;
  provisioning?: ProvisioningOptions;
  auditWitnessMs: number;
  auditCheckpointMs: number;
  /** the health monitor: kick() delivers webhooks of a health change at once */
  monitor: Monitor;
}

declare module "fastify" {
  interface FastifyInstance {
    /** this instance's health monitor: its sweeps and webhook delivery */
    monitor: Monitor;
  }
}

export type RouteModule = (app: FastifyInstance, deps: RouteDeps) => Promise<void> | void;

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const serverOpts: FastifyServerOptions = {
    loggerInstance: opts.logger || undefined,
    logger: opts.logger ? undefined : false,
    bodyLimit: opts.bodyLimit ?? 1 << 20,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } },
    return503OnClosing: true,
    // per-request logs would dominate at fleet scale; errors and decisions are logged where they happen
    logController: new LogController({ disableRequestLogging: true }),
  } as FastifyServerOptions;
  const app = (opts.https ? Fastify({ ...serverOpts, https: opts.https } as FastifyServerOptions) : Fastify(serverOpts)) as unknown as FastifyInstance;
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => sendProblem(reply, problem("ERR_NOT_FOUND", `no route ${req.method} ${req.url.split("?")[0]}`, undefined, req.url)));
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "tpmtrust", version: "0.1.0", description: "TPM 2.0 attestation authority API. Errors are RFC 7807 problem+json with a stable `code`." },
      components: { securitySchemes: { adminToken: { type: "http", scheme: "bearer", description: "admin or auditor API token (tpmtrust admin token create)" } } },
    },
  });
  installAuth(app, opts.store, opts.now ?? Date.now, opts.inProcess);
  installPaging(app);
  installMetrics(app);
  const unsubscribe = opts.store.faults.subscribe((f) => {
    if (f.kind === "audit-append") {
      metrics.auditWriteFailures.inc({ action: f.action });
      app.log.error({ err: f.error, action: f.action }, "an audit entry could not be written; the decision it was to record failed");
    } else {
      metrics.storeConnectionErrors.inc();
      app.log.error({ err: f.error }, "PostgreSQL connection error");
    }
  });
  app.addHook("onClose", async () => void unsubscribe());
  const now = opts.now ?? Date.now;
  const attest = attestConfig(opts.attest);
  // the CLI in-process neither sweeps nor delivers webhooks: the running service notices its changes (the trust version) and delivers
  const monitor: Monitor = opts.inProcess
    ? { kick: () => undefined, trustChanged: () => undefined, stop: async () => undefined }
    : startMonitor({
        store: opts.store,
        cfg: attest,
        now,
        logger: app.log,
        onTrustSweep: (sweep) => {
          metrics.trustSweeps.inc();
          metrics.trustSweepJudged.inc(sweep.judged);
        },
      });
  app.decorate("monitor", monitor);
  app.addHook("onClose", () => monitor.stop());
  const deps: RouteDeps = { store: opts.store, now, publicUrl: opts.publicUrl, attest, provisioning: opts.provisioning, auditWitnessMs: opts.auditWitnessMs ?? 600_000, auditCheckpointMs: opts.auditCheckpointMs ?? 5_000, monitor };
  for (const mod of routeModules) await app.register(async (scope) => mod(scope, deps));
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
