import { readiness } from "../../attest/health.js";
import type { RouteModule } from "../app.js";

/** Liveness and readiness: /healthz says the process serves, /readyz that the database answers. */
const health: RouteModule = (app, { store }) => {
  app.get("/healthz", { config: { access: "public" }, schema: { tags: ["health"], summary: "liveness" } }, async () => ({ status: "ok" }));
  app.get("/readyz", { config: { access: "public" }, schema: { tags: ["health"], summary: "readiness: the database answers" } }, async (_req, reply) => {
    const { ready, database } = await readiness(store);
    return ready ? { status: "ready", database } : reply.code(503).send({ status: "not ready", database });
  });
};
export default health;
