/**
 * Prometheus metrics of the service (prom-client), served at GET /metrics. One process-wide
 * registry: services count what they decide (`metrics.attestations.inc({ verdict, reason })`),
 * and gauges read from the store (audit chain length, hosts by health) are refreshed per scrape.
 * Label values are closed sets (verdicts, outcomes, ERR_… codes, route patterns), never host names.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { FastifyInstance } from "fastify";
import { isTpmTrustError } from "../errors.js";

const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "tpmtrust_" });

/** Seconds; from sub-millisecond quote checks to multi-second event logs and HSM calls. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter<L>({ name, help, labelNames, registers: [registry] });
const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
  new Histogram<L>({ name, help, labelNames, buckets: LATENCY_BUCKETS, registers: [registry] });
const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Gauge<L>({ name, help, labelNames, registers: [registry] });

export const metrics = {
  registry,
  /** verdict pass|fail (recorded for the host) or rejected (evidence refused); reason: the ERR_… code or "none" */
  attestations: counter("tpmtrust_attestations_total", "attestation evidence handled, by verdict and reason code", ["verdict", "reason"]),
  attestationSeconds: histogram("tpmtrust_attestation_duration_seconds", "time to judge one attestation's evidence", ["verdict"]),
  challenges: counter("tpmtrust_attestation_challenges_total", "attestation nonces issued or refused", ["outcome", "reason"]),
  /** kind host (Add-HgsAttestationTpmHost style) or device (DPS-style provisioning) */
  hostAdditions: counter("tpmtrust_host_additions_total", "hosts added by an administrator (hosts add), by outcome and reason code", ["outcome", "reason"]),
  /** stage start (MakeCredential issued) or complete (secret proven) */
  activations: counter("tpmtrust_activations_total", "AK credential activations, by stage, outcome and reason code", ["stage", "outcome", "reason"]),
  certificatesIssued: counter("tpmtrust_certificates_issued_total", "certificates issued, by issuing purpose", ["purpose"]),
  certificateRequests: counter("tpmtrust_certificate_requests_total", "certificate requests, by outcome and reason code", ["outcome", "reason"]),
  provisioning: counter("tpmtrust_provisioning_total", "provisioning operations, by operation, outcome and reason code", ["operation", "outcome", "reason"]),
  keyOperations: counter("tpmtrust_key_operations_total", "key provider operations (wrap, unwrap, sign, release …), by provider kind and outcome", ["operation", "provider", "outcome", "reason"]),
  keyOperationSeconds: histogram("tpmtrust_key_operation_duration_seconds", "key provider operation latency", ["operation", "provider"]),
  httpSeconds: histogram("tpmtrust_http_request_duration_seconds", "HTTP request latency by route pattern and status", ["method", "route", "status"]),
  auditWriteFailures: counter("tpmtrust_audit_write_failures_total", "audit entries that could not be written (the decision each was to record failed), by action", ["action"]),
  trustSweeps: counter("tpmtrust_trust_sweeps_total", "trust sweeps this instance ran to their end (EK trust of every host re-checked after a trust change, at start and periodically)", []),
  trustSweepJudged: counter("tpmtrust_trust_sweep_judged_total", "hosts whose EK trust a trust sweep evaluated afresh (the others' cached evaluations still held)", []),
  quoteVerifications: counter("tpmtrust_quote_verifications_total", "attestations whose quotes were verified on the event loop's thread or on a worker thread (serve --verify-threads)", ["thread"]),
  storeConnectionErrors: counter("tpmtrust_store_connection_errors_total", "PostgreSQL pool and connection errors", []),
  /** refreshed per scrape from the store's own count (Store.stats) */
  storeRoundTrips: counter("tpmtrust_store_round_trips_total", "queries sent to the database (on PostgreSQL each one round trip), transaction control included", []),
  storeStatements: counter("tpmtrust_store_statements_total", "queries sent to the database other than BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE", []),
  auditChainLength: gauge("tpmtrust_audit_chain_length", "entries in the hash-chained audit log (seq of its head)", []),
  hosts: gauge("tpmtrust_hosts", "registered hosts by health", ["health"]),
};

/** The reason label of an outcome: the error's stable code, "ERR_INTERNAL" for anything untyped, "none" for success. */
export function reasonOf(e?: unknown): string {
  if (e === undefined || e === null) return "none";
  return isTpmTrustError(e) ? e.code : "ERR_INTERNAL";
}

/**
 * Runs `fn`, counting its outcome on `c` with `labels` plus outcome/reason, and (optionally) timing
 * it on `h`. The error is rethrown unchanged.
 */
export async function counted<T, L extends string>(
  c: Counter<L>,
  labels: Partial<Record<L, string>>,
  fn: () => Promise<T>,
  h?: { histogram: Histogram<string>; labels: Record<string, string> },
): Promise<T> {
  const end = h?.histogram.startTimer(h.labels);
  try {
    const r = await fn();
    c.inc({ ...labels, outcome: "success", reason: "none" } as Partial<Record<L, string>>);
    return r;
  } catch (e) {
    c.inc({ ...labels, outcome: "failure", reason: reasonOf(e) } as Partial<Record<L, string>>);
    throw e;
  } finally {
    end?.();
  }
}

/**
 * Judges one attestation's evidence through `fn`: counts its verdict and reason code (a thrown
 * error counts as verdict "rejected" with the error's code) and times it.
 */
export async function timeAttestation<T extends { verdict: string; code: string | null }>(fn: () => Promise<T>): Promise<T> {
  const end = metrics.attestationSeconds.startTimer();
  try {
    const r = await fn();
    metrics.attestations.inc({ verdict: r.verdict, reason: r.code ?? "none" });
    end({ verdict: r.verdict });
    return r;
  } catch (e) {
    metrics.attestations.inc({ verdict: "rejected", reason: reasonOf(e) });
    end({ verdict: "rejected" });
    throw e;
  }
}

/** Times every request by its route pattern (unmatched URLs share one label, so scans add no series). */
export function installMetrics(app: FastifyInstance): void {
  app.addHook("onResponse", async (req, reply) => {
    metrics.httpSeconds.observe({ method: req.method, route: req.routeOptions.url ?? "unmatched", status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
}
