import type { RouteModule } from "../app.js";
import health from "./health.js";
import trust from "./trust.js";
import hosts from "./hosts.js";
import activations from "./activations.js";

/** Every area's routes; an area adds one entry here. */
export const routeModules: RouteModule[] = [health, trust, hosts, activations];
