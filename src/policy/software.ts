import { TpmTrustError } from "../errors.js";
import { interpretBootChain, type BootImage, type EventLog, type ReplayedEventLog } from "../verify/eventlog/index.js";
import type { PolicyDiff, PolicyResult } from "./baseline.js";
import { DIGESTS, NAME, parseDocument, validate, type Schema } from "./schema.js";

/**
 * Accepted boot software (vSphere Trust Authority's "accepted software versions"): the boot loaders,
 * kernels and initrds whose digests may appear in a host's verified log. Kernels and initrds are kept
 * with their PCR: 4 for the EFI image the firmware loaded, 9 for the file GRUB read.
 */
export const SOFTWARE_VERSION = 1;
export const SOFTWARE_SCHEMA_ID = "https://tpmtrust.dev/schemas/software-1.json";

export interface AcceptedImage {
  pcr: number;
  role: string;
  path?: string;
  digests: Record<string, string>;
}

export interface SoftwarePolicy {
  $schema: typeof SOFTWARE_SCHEMA_ID;
  kind: "tpmtrust.software";
  version: typeof SOFTWARE_VERSION;
  name: string;
  bootloaders: AcceptedImage[];
  kernels: AcceptedImage[];
  initrds: AcceptedImage[];
}

const IMAGE: Schema = {
  type: "object",
  required: ["pcr", "role", "digests"],
  additionalProperties: false,
  properties: {
    pcr: { type: "integer", minimum: 0, maximum: 23 },
    role: { type: "string", maxLength: 32 },
    path: { type: "string", maxLength: 1024 },
    digests: DIGESTS,
  },
};

export const SOFTWARE_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: SOFTWARE_SCHEMA_ID,
  title: "tpmtrust accepted boot software",
  type: "object",
  required: ["$schema", "kind", "version", "name", "bootloaders", "kernels", "initrds"],
  additionalProperties: false,
  properties: {
    $schema: { const: SOFTWARE_SCHEMA_ID },
    kind: { const: "tpmtrust.software" },
    version: { type: "integer" },
    name: NAME,
    bootloaders: { type: "array", items: IMAGE },
    kernels: { type: "array", items: IMAGE },
    initrds: { type: "array", items: IMAGE },
  },
};

type Kind = "bootloaders" | "kernels" | "initrds";
const KINDS: [Kind, string][] = [
  ["bootloaders", "bootloader"],
  ["kernels", "kernel"],
  ["initrds", "initrd"],
];

function accepted(img: BootImage): AcceptedImage {
  return { pcr: img.pcr, role: img.role, ...(img.path ? { path: img.path } : {}), digests: img.digests };
}

const sameImage = (a: AcceptedImage, b: AcceptedImage) => a.pcr === b.pcr && Object.entries(a.digests).every(([k, v]) => b.digests[k] === v);

/** Extracts the boot software of reference logs (union, de-duplicated by digest). */
export function learnSoftware(name: string, logs: EventLog[]): SoftwarePolicy {
  validate(NAME, name, "software policy name");
  if (!logs.length) throw new TpmTrustError("ERR_USAGE", "software is learned from at least one log");
  const policy: SoftwarePolicy = { $schema: SOFTWARE_SCHEMA_ID, kind: "tpmtrust.software", version: SOFTWARE_VERSION, name, bootloaders: [], kernels: [], initrds: [] };
  for (const log of logs) {
    const chain = interpretBootChain(log.events);
    for (const [kind] of KINDS) {
      for (const img of chain[kind].map(accepted)) if (!policy[kind].some((x) => sameImage(x, img))) policy[kind].push(img);
    }
  }
  return policy;
}

export function parseSoftwarePolicy(doc: unknown): SoftwarePolicy {
  return parseDocument<SoftwarePolicy>(SOFTWARE_SCHEMA, SOFTWARE_VERSION, "software policy", doc);
}

/**
 * Every boot loader, kernel and initrd in the verified log must be accepted: same PCR and equal digests
 * in every bank both have (at least one). The PCRs the policy names must have been verified.
 */
export function evaluateSoftware(policy: SoftwarePolicy, verified: ReplayedEventLog): PolicyResult {
  const diffs: PolicyDiff[] = [];
  const verifiedPcrs = new Set(verified.explained.filter((e) => e.events > 0).map((e) => e.pcr));
  for (const pcr of new Set(KINDS.flatMap(([k]) => policy[k].map((i) => i.pcr)))) {
    if (!verifiedPcrs.has(pcr)) diffs.push({ pcr, kind: "pcr-not-verified", description: `PCR ${pcr}`, meaning: `PCR ${pcr} was not verified by the quote, so its boot software cannot be judged` });
  }
  const chain = interpretBootChain(verified.events);
  for (const [kind, what] of KINDS) {
    for (const img of chain[kind]) {
      const ok = policy[kind].some((a) => {
        if (a.pcr !== img.pcr) return false;
        const common = Object.keys(a.digests).filter((b) => img.digests[b]);
        return common.length > 0 && common.every((b) => a.digests[b] === img.digests[b]);
      });
      if (!ok) {
        diffs.push({
          pcr: img.pcr,
          kind: "unexpected",
          type: img.pcr === 9 ? "EV_IPL" : "EV_EFI_BOOT_SERVICES_APPLICATION",
          record: img.record,
          description: `${what} ${img.path ?? "(no path)"}`,
          actual: img.digests,
          meaning: `${what} is not accepted software (${what} digest differs)`,
        });
      }
    }
  }
  return { pass: diffs.length === 0, policy: policy.name, diffs };
}
