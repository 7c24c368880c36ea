import type { RouteModule } from "../app.js";
import health from "./health.js";

/** Every area's routes; an area adds one entry here. */
export const routeModules: RouteModule[] = [health];
