import type { Interpretation, VerifiedEventLog } from "../verify/eventlog/index.js";
import type { PolicyDiff, PolicyResult } from "./baseline.js";
import { HEX_DIGEST, NAME, validate, type Schema } from "./schema.js";

/**
 * "Secure Boot required": the SecureBoot variable measured into PCR 7 (a verified event) says
 * enabled and the platform is not in setup mode; optionally, every authority that verified boot
 * software (EV_EFI_VARIABLE_AUTHORITY) is one of the listed certificates (SHA-256 of the DER).
 */
const SECUREBOOT_VERSION = 1;
const SECUREBOOT_SCHEMA_ID = "https://tpmtrust.dev/schemas/secureboot-1.json";
export const SECUREBOOT_PCR = 7;

export interface SecureBootPolicy {
  $schema: typeof SECUREBOOT_SCHEMA_ID;
  kind: "tpmtrust.secureboot";
  version: typeof SECUREBOOT_VERSION;
  name: string;
  /** SHA-256 (hex) of the certificates allowed to verify boot software; absent: any authority in db */
  authorities?: string[];
}

const SECUREBOOT_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: SECUREBOOT_SCHEMA_ID,
  title: "tpmtrust Secure Boot policy",
  type: "object",
  required: ["$schema", "kind", "version", "name"],
  additionalProperties: false,
  properties: {
    $schema: { const: SECUREBOOT_SCHEMA_ID },
    kind: { const: "tpmtrust.secureboot" },
    version: { const: SECUREBOOT_VERSION },
    name: NAME,
    authorities: { type: "array", items: { ...HEX_DIGEST, pattern: "^[0-9a-f]{64}$" } },
  },
};

export function secureBootPolicy(name: string, authorities?: string[]): SecureBootPolicy {
  return parseSecureBootPolicy({ $schema: SECUREBOOT_SCHEMA_ID, kind: "tpmtrust.secureboot", version: SECUREBOOT_VERSION, name, ...(authorities ? { authorities } : {}) });
}

export function parseSecureBootPolicy(doc: unknown): SecureBootPolicy {
  validate(SECUREBOOT_SCHEMA, doc, "Secure Boot policy");
  return doc as SecureBootPolicy;
}

/** Judges the Secure Boot facts of a verified log (`facts` = interpretEvents(verified.events)). */
export function evaluateSecureBoot(policy: SecureBootPolicy, verified: VerifiedEventLog, facts: Interpretation): PolicyResult {
  const diffs: PolicyDiff[] = [];
  const pcr = SECUREBOOT_PCR;
  if (!verified.explained.some((e) => e.pcr === pcr)) {
    diffs.push({ pcr, kind: "pcr-not-verified", description: `PCR ${pcr}`, meaning: `PCR ${pcr} was not verified by the quote, so the Secure Boot state is unknown` });
    return { pass: false, policy: policy.name, diffs };
  }
  const sb = facts.secureBoot;
  if (sb.enabled !== true) {
    diffs.push({
      pcr,
      kind: sb.enabled === false ? "differs" : "missing",
      type: "EV_EFI_VARIABLE_DRIVER_CONFIG",
      description: "Secure Boot variable SecureBoot",
      expected: { SecureBoot: "enabled" },
      ...(sb.enabled === false ? { actual: { SecureBoot: "disabled" } } : {}),
      meaning: sb.enabled === false ? "Secure Boot disabled" : "the Secure Boot state was not measured (no verified SecureBoot variable in PCR 7)",
    });
  }
  if (sb.setupMode === true) {
    diffs.push({ pcr, kind: "differs", type: "EV_EFI_VARIABLE_DRIVER_CONFIG", description: "Secure Boot variable SetupMode", expected: { SetupMode: "0" }, actual: { SetupMode: "1" }, meaning: "the platform is in setup mode: Secure Boot keys are not enforced" });
  }
  if (policy.authorities) {
    const allowed = new Set(policy.authorities);
    for (const a of sb.authorities) {
      const id = a.certificate?.sha256 ?? a.sha256;
      if (allowed.has(id)) continue;
      diffs.push({
        pcr,
        kind: "unexpected",
        type: "EV_EFI_VARIABLE_AUTHORITY",
        record: a.record,
        description: `authority from ${a.variable}${a.certificate?.subject ? ` (${a.certificate.subject})` : ""}`,
        actual: { sha256: id },
        meaning: "boot software was verified by an authority the policy does not allow",
      });
    }
  }
  return { pass: diffs.length === 0, policy: policy.name, diffs };
}
