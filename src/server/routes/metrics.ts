/** Prometheus exposition at GET /metrics (admin or auditor token: fleet figures are not public). */
import { auditHead } from "../../attest/audit-log.js";
import { hostsByHealth } from "../../attest/health.js";
import type { RouteModule } from "../app.js";
import { READERS } from "../auth.js";
import { metrics } from "../metrics.js";
import type { Store, StoreStats } from "../../store/index.js";

// what the counters already hold of each store's count
const counted = new WeakMap<Store, StoreStats>();
function countQueries(store: Store): void {
  const before = counted.get(store) ?? { roundTrips: 0, statements: 0 };
  metrics.storeRoundTrips.inc(store.stats.roundTrips - before.roundTrips);
  metrics.storeStatements.inc(store.stats.statements - before.statements);
  counted.set(store, { ...store.stats });
}

const metricsRoute: RouteModule = (app, { store }) => {
  app.get(
    "/metrics",
    { config: { access: READERS }, schema: { tags: ["health"], summary: "Prometheus metrics (text exposition format); scrape with an auditor token" } },
    async (_req, reply) => {
      countQueries(store);
      metrics.auditChainLength.set((await auditHead(store)).seq);
      for (const [health, n] of Object.entries(await hostsByHealth(store))) metrics.hosts.set({ health }, n);
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    },
  );
};
export default metricsRoute;
