/**
 * Continuous attestation: every attestation moves a host's deadline to `at + intervalMs × grace`;
 * a host that fails, or stays silent past its deadline, is unhealthy. Every health change is
 * audited, queued for webhook subscribers, and (to unhealthy) revokes the host's tokens, all in the
 * transaction that makes the change. A sweeper in each service instance finds silent hosts; the
 * conditional update in hosts.markSilent lets exactly one instance report each transition. The same
 * monitor re-checks EK trust (sweepTrust) when the trust configuration changed, so trust withdrawn
 * turns hosts unhealthy without waiting for their next attestation.
 */
import type { TpmTrustError } from "../errors.js";
import type { Health, Repos, Store, TrustCandidate } from "../store/index.js";
import { judgeHostEkTrust, knownHostEkTrust, readTrustView, trustStamp } from "../trust/host-trust.js";
import type { AttestConfig } from "./config.js";
import { deliverDue } from "./webhooks.js";

const HEALTH_EVENT = "host.health";
/** EK trust of every host is re-checked at least this often, also without a trust change (certificates expire). */
const TRUST_RECHECK_MS = 15 * 60_000;
/** Hosts the trust sweep reads (and at most judges) between two turns of the event loop. */
const TRUST_SWEEP_PAGE = 200;
/** Hosts the trust sweep judges between two turns of the event loop. */
const TRUST_JUDGE_SLICE = 16;
const turn = () => new Promise((resolve) => setImmediate(resolve));
/** Limit counters are kept this long after their window began: no limit of the service has a longer window. */
const LIMIT_WINDOWS_MS = 24 * 3_600_000;

/** Readiness: the database answers a query. */
export async function readiness(store: Store): Promise<{ ready: boolean; database: Store["dialect"] }> {
  try {
    await store.audit.head();
    return { ready: true, database: store.dialect };
  } catch {
    return { ready: false, database: store.dialect };
  }
}

/** How many hosts are in each health state. */
export const hostsByHealth = (store: Store): Promise<Record<Health, number>> => store.hosts.countByHealth();

export interface HealthChange {
  host: string;
  hardwareClass: string;
  previous: Health;
  health: Health;
  /** stable code of why (ERR_… of a failed attestation, ERR_HOST_SILENT), null when healthy */
  reason: string | null;
  /** the specific reason behind `reason` (e.g. ERR_EK_REVOKED behind ERR_EK_NOT_TRUSTED) */
  cause?: string;
  at: number;
  attestationId?: string;
}

/** Reports a health change inside the caller's transaction; returns how many tokens were revoked. */
export async function healthChanged(tx: Repos, c: HealthChange, actor = "system"): Promise<number> {
  const revoked = c.health === "unhealthy" ? await tx.tokens.revokeForHost(c.host, c.at) : 0;
  const data = { host: c.host, hardwareClass: c.hardwareClass, previous: c.previous, health: c.health, reason: c.reason, at: c.at, ...(c.cause ? { cause: c.cause } : {}), ...(c.attestationId ? { attestationId: c.attestationId } : {}) };
  await tx.webhooks.enqueue(HEALTH_EVENT, data, c.at);
  await tx.audit.append({ actor, action: "host.health", subject: c.host, outcome: "success", details: { ...data, revokedTokens: revoked }, at: c.at });
  return revoked;
}

/** Marks every host that is past its deadline unhealthy; returns the changes this instance made. */
export async function sweepSilentHosts(store: Store, now: () => number): Promise<HealthChange[]> {
  const changes: HealthChange[] = [];
  for (const h of await store.hosts.listOverdue(now())) {
    const at = now();
    const c = await store.transaction(async (tx) => {
      if (!(await tx.hosts.markSilent(h.name, { seen: h.health, reason: "ERR_HOST_SILENT", at }))) return undefined;
      const change: HealthChange = { host: h.name, hardwareClass: h.hardwareClass, previous: h.health, health: "unhealthy", reason: "ERR_HOST_SILENT", at };
      await healthChanged(tx, change);
      return change;
    });
    if (c) changes.push(c);
  }
  return changes;
}

export interface TrustSweep {
  /** the transitions this call made */
  changes: HealthChange[];
  /** hosts read (those a trust change can turn unhealthy) */
  hosts: number;
  /** hosts whose EK trust was evaluated: the others' cached evaluations proved it */
  judged: number;
}

/**
 * Re-checks the EK trust of every host a trust change can turn unhealthy (enabled, not unhealthy,
 * with an EK: trust of a host without one rests on nothing the configuration holds) and turns those
 * whose EK no longer holds under their policy version unhealthy with ERR_EK_NOT_TRUSTED (`cause`:
 * why, e.g. ERR_EK_REVOKED): tokens revoked, webhook queued, audited, one transaction each, without
 * waiting for their next attestation. The configuration is read once; hosts are read a page at a
 * time by name, and the event loop turns between pages and every few hosts judged. A host is judged
 * only when this instance's cached evaluation does not already prove it (same trust stamp, or the
 * EK hash, allow-list entry or certificate path it passed by all still there). The conditional
 * update lets exactly one instance report each transition.
 */
export async function sweepTrust(store: Store, now: () => number): Promise<TrustSweep> {
  const view = await readTrustView(store);
  const changes: HealthChange[] = [];
  let hosts = 0;
  let judged = 0;
  let after: string | undefined;
  for (;;) {
    const page = await store.hosts.trustCandidates({ ...(after !== undefined ? { after } : {}), limit: TRUST_SWEEP_PAGE });
    const failed: [TrustCandidate, TpmTrustError][] = [];
    const unknown: TrustCandidate[] = [];
    for (const h of page) {
      const k = knownHostEkTrust(view, h, now());
      if (k === undefined) unknown.push(h);
      else if (k !== "trusted") failed.push([h, k]);
    }
    hosts += page.length;
    judged += unknown.length;
    const eks = unknown.length ? await store.hosts.eksOf(unknown.map((h) => h.name)) : undefined;
    for (const [i, h] of unknown.entries()) {
      // judging is CPU work (certificate chains): a few hosts at a time
      if (i > 0 && i % TRUST_JUDGE_SLICE === 0) await turn();
      const r = judgeHostEkTrust(view, h, eks!.get(h.name) ?? [], now());
      if (typeof r !== "string") failed.push([h, r]);
    }
    for (const [h, e] of failed) {
      const at = now();
      const cause = typeof e.details?.cause === "string" ? e.details.cause : e.code;
      const c = await store.transaction(async (tx) => {
        const r = await tx.hosts.markUnhealthy(h.name, { reason: "ERR_EK_NOT_TRUSTED", at });
        if (!r.changed) return undefined;
        const change: HealthChange = { host: h.name, hardwareClass: h.hardwareClass, previous: r.previous, health: "unhealthy", reason: "ERR_EK_NOT_TRUSTED", cause, at };
        await healthChanged(tx, change);
        return change;
      });
      if (c) changes.push(c);
    }
    if (page.length < TRUST_SWEEP_PAGE) return { changes, hosts, judged };
    after = page.at(-1)!.name;
    // the API's requests run between pages
    await turn();
  }
}

export interface Monitor {
  /** runs webhook delivery soon (after a health change), without waiting for the next tick */
  kick(): void;
  /** runs the trust sweep soon (after this instance changed the trust configuration), then webhook delivery */
  trustChanged(): void;
  stop(): Promise<void>;
}

/**
 * Starts the periodic sweep every `sweepMs` (0: only on kick): silent hosts; the trust sweep when
 * the trust configuration changed since the last one (by any instance: the trust version and the
 * allow-list folders) or TRUST_RECHECK_MS passed; expired nonces, activations, tokens and limit
 * windows; then due webhook deliveries.
 */
export function startMonitor(o: {
  store: Store;
  cfg: AttestConfig;
  now: () => number;
  logger?: { error(obj: object, msg: string): void };
  /** told of every trust sweep that ran to its end */
  onTrustSweep?: (sweep: TrustSweep) => void;
}): Monitor {
  let running: Promise<void> | undefined;
  let again = false;
  let trustAgain = false;
  let stopped = false;
  let lastTrust: { stamp: string; at: number } | undefined;
  const log = (err: unknown, what: string) => o.logger?.error({ err: (err as Error).message }, what);
  const checkTrust = async (force: boolean) => {
    const stamp = await trustStamp(o.store);
    const at = o.now();
    if (!force && lastTrust?.stamp === stamp && at - lastTrust.at < TRUST_RECHECK_MS) return;
    const sweep = await sweepTrust(o.store, o.now);
    lastTrust = { stamp, at };
    o.onTrustSweep?.(sweep);
  };
  const run = (sweep: boolean, trust = false): void => {
    if (stopped) return;
    if (running) {
      again = true;
      trustAgain ||= trust;
      return;
    }
    running = (async () => {
      if (sweep || trust) await checkTrust(trust).catch((e) => log(e, "trust sweep failed"));
      if (sweep) {
        await sweepSilentHosts(o.store, o.now).catch((e) => log(e, "health sweep failed"));
        // spent challenges, expired activations and token records, and past limit windows serve nothing any more
        const at = o.now();
        await Promise.all([
          o.store.nonces.purgeExpired(at),
          o.store.activations.purgeExpired(at),
          o.store.tokens.purgeExpired(at),
          o.store.rateLimits.purge(at - LIMIT_WINDOWS_MS),
        ]).catch((e) => log(e, "purge failed"));
      }
      await deliverDue(o.store, o.cfg, o.now).catch((e) => log(e, "webhook delivery failed"));
    })().finally(() => {
      running = undefined;
      if (again) {
        const trust = trustAgain;
        again = trustAgain = false;
        run(false, trust);
      }
    });
  };
  const timer = o.cfg.sweepMs > 0 ? setInterval(() => run(true), o.cfg.sweepMs) : undefined;
  timer?.unref();
  return {
    kick: () => run(false),
    trustChanged: () => run(false, true),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
