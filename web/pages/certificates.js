// The key attestation CA: certificates issued, templates.
import { renderArea } from "./area.js";

export const render = (main) => renderArea(main, { title: "Certificates", what: "Certificates issued", prefixes: ["/v1/ca"] });
