// Zero-touch provisioning: enrollments (individual and group) and device registrations.
import { renderArea } from "./area.js";

export const render = (main) => renderArea(main, { title: "Provisioning", what: "Enrollments and device registrations", prefixes: ["/v1/provisioning", "/v1/enrollments", "/v1/registrations"] });
