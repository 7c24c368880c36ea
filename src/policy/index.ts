/**
 * Policies over verified event logs. Pure: documents and evidence in, verdict and diff out.
 *
 *   learnBaseline(name, logs, pcrs) / evaluateBaseline(baseline, verifiedLog)
 *   learnSoftware(name, logs)       / evaluateSoftware(policy, verifiedLog)
 *   parseBaseline(json) / parseSoftwarePolicy(json): strict schema validation, version check
 */
export {
  BASELINE_SCHEMA,
  BASELINE_SCHEMA_ID,
  BASELINE_VERSION,
  evaluateBaseline,
  formatResult,
  learnBaseline,
  parseBaseline,
  parsePcrList,
  type Baseline,
  type BaselineEvent,
  type DiffKind,
  type PolicyDiff,
  type PolicyResult,
} from "./baseline.js";
export {
  SOFTWARE_SCHEMA,
  SOFTWARE_SCHEMA_ID,
  SOFTWARE_VERSION,
  evaluateSoftware,
  learnSoftware,
  parseSoftwarePolicy,
  type AcceptedImage,
  type SoftwarePolicy,
} from "./software.js";
export { describeEvent, eventKey, meaningOfChange } from "./events.js";
export { parseDocument, validate, type Schema } from "./schema.js";
