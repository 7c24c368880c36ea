import type { RouteModule } from "../app.js";
import health from "./health.js";
import trust from "./trust.js";
import hosts from "./hosts.js";
import activations from "./activations.js";
import attestations from "./attestations.js";
import policies from "./policies.js";
import webhooks from "./webhooks.js";
import jwks from "./jwks.js";
import audit from "./audit.js";
import keys from "./keys.js";
import metrics from "./metrics.js";
import ui from "./ui.js";
import ca from "./ca.js";
import acme from "./acme.js";
import provisioning from "./provisioning.js";
import admin from "./admin.js";

/** Every area's routes; an area adds one entry here. */
export const routeModules: RouteModule[] = [health, trust, hosts, activations, attestations, policies, webhooks, jwks, audit, metrics, keys, ca, acme, provisioning, admin, ui];
