// Key release: trusted key providers, key servers, clusters.
import { renderArea } from "./area.js";

export const render = (main) => renderArea(main, { title: "Key providers", what: "Key providers", prefixes: ["/v1/keys"] });
