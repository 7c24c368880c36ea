import { createHash } from "node:crypto";
import { ContentInfo, id_signedData } from "@peculiar/asn1-cms";
import { AsnConvert } from "@peculiar/asn1-schema";
import { TpmTrustError } from "../errors.js";
import { EV, dataBinding, type TcgEvent, type VerifiedEventLog } from "../verify/eventlog/index.js";
import { flattenSipa } from "../verify/eventlog/sipa.js";
import { SIPA } from "../verify/eventlog/constants.js";
import type { PolicyDiff, PolicyResult } from "./baseline.js";
import { NAME, validate, type Schema } from "./schema.js";

/**
 * A code-integrity policy, registered by name and digest (e.g. a Windows Defender Application
 * Control / SI policy, or a policy file a Linux boot chain measures). It holds when its measurement
 * appears among the verified events of its PCRs: as the digest of a Windows SIPAEVENT_SI_POLICY
 * entry in bound event data, or as the digest of a verified event.
 */
const CI_VERSION = 1;
const CI_SCHEMA_ID = "https://tpmtrust.dev/schemas/ci-1.json";
/** Windows measures its boot configuration and code-integrity facts into PCRs 12–14 (WBCL). */
export const CI_DEFAULT_PCRS = [12, 13, 14];

export interface CodeIntegrityPolicy {
  $schema: typeof CI_SCHEMA_ID;
  kind: "tpmtrust.ci";
  version: typeof CI_VERSION;
  name: string;
  /** lowercase hex digest of the policy (20, 32, 48 or 64 bytes) */
  digest: string;
  /** PCRs whose verified events are searched */
  pcrs: number[];
}

const CI_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: CI_SCHEMA_ID,
  title: "tpmtrust code-integrity policy",
  type: "object",
  required: ["$schema", "kind", "version", "name", "digest", "pcrs"],
  additionalProperties: false,
  properties: {
    $schema: { const: CI_SCHEMA_ID },
    kind: { const: "tpmtrust.ci" },
    version: { const: CI_VERSION },
    name: NAME,
    digest: { type: "string", pattern: "^(([0-9a-f]{2}){20}|([0-9a-f]{2}){32}|([0-9a-f]{2}){48}|([0-9a-f]{2}){64})$" },
    pcrs: { type: "array", minItems: 1, items: { type: "integer", minimum: 0, maximum: 23 } },
  },
};

export function codeIntegrityPolicy(name: string, digest: string, pcrs: number[] = CI_DEFAULT_PCRS): CodeIntegrityPolicy {
  return parseCodeIntegrityPolicy({ $schema: CI_SCHEMA_ID, kind: "tpmtrust.ci", version: CI_VERSION, name, digest: digest.toLowerCase(), pcrs });
}

export function parseCodeIntegrityPolicy(doc: unknown): CodeIntegrityPolicy {
  validate(CI_SCHEMA, doc, "code-integrity policy");
  return doc as CodeIntegrityPolicy;
}

/**
 * SIPAEVENT_SI_POLICY_PAYLOAD (wbcl.h, little-endian): u64 PolicyVersion, u16 PolicyNameLength,
 * u16 HashAlgID, u32 DigestLength, then PolicyName (UTF-16, NUL-terminated) and Digest.
 */
function siPolicy(data: Buffer): { name: string; version: bigint; hashAlg: number; digest: Buffer } | undefined {
  if (data.length < 16) return undefined;
  const nameLen = data.readUInt16LE(8);
  const digestLen = data.readUInt32LE(12);
  if (16 + nameLen + digestLen !== data.length) return undefined;
  return {
    version: data.readBigUInt64LE(0),
    name: data.subarray(16, 16 + nameLen).toString("utf16le").replace(/\0+$/, ""),
    hashAlg: data.readUInt16LE(10),
    digest: data.subarray(16 + nameLen),
  };
}

/**
 * Where Windows records a code-integrity (SI / App Control) policy in the TCG log: winload measures
 * the policy it loads as a SIPAEVENT_SI_POLICY item (0x0005000F, an OS-parameter event of the WBCL)
 * inside an EV_EVENT_TAG event; its SIPAEVENT_SI_POLICY_PAYLOAD carries the policy's name, version,
 * HashAlgID (TPM_ALG_SHA256) and the digest of the policy blob (wbcl.h, Windows SDK 10.0.14393+).
 */
export const CI_MEASUREMENT = "SIPAEVENT_SI_POLICY (0x0005000F) in an EV_EVENT_TAG (SIPA) event: the SHA-256 digest in its SIPAEVENT_SI_POLICY_PAYLOAD";

/**
 * The digest Windows measures for a policy file: SHA-256 (the payload's HashAlgID, TPM_ALG_SHA256) of
 * the policy blob exactly as deployed and loaded: a signed policy's .p7b (CMS SignedData) or an
 * unsigned binary policy (.bin/.cip, the output of ConvertFrom-CIPolicy). The XML source is not what
 * is loaded: ERR_PARSE_FORMAT with the conversion to run; a .p7b that is no SignedData likewise.
 */
export function siPolicyFileDigest(bytes: Buffer, fileName = "policy"): string {
  if (bytes.length === 0) throw new TpmTrustError("ERR_PARSE_FORMAT", `${fileName} is empty`);
  const head = bytes.subarray(0, 64).toString("utf8").replace(/^\uFEFF/, "").trimStart();
  if (head.startsWith("<")) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `${fileName} is the XML source of a policy; Windows measures the binary it loads: convert it first (ConvertFrom-CIPolicy -XmlFilePath ${fileName} -BinaryFilePath policy.bin, then sign it for a .p7b)`);
  }
  if (/\.p7b$/i.test(fileName)) {
    let signed = false;
    try {
      signed = AsnConvert.parse(bytes, ContentInfo).contentType === id_signedData;
    } catch {
      signed = false;
    }
    if (!signed) throw new TpmTrustError("ERR_PARSE_FORMAT", `${fileName} is not a signed policy (a DER CMS SignedData)`);
  }
  return createHash("sha256").update(bytes).digest("hex");
}

function measuredBy(ev: TcgEvent, digest: Buffer): string | undefined {
  if (Object.values(ev.digests).some((d) => d.equals(digest))) return "event digest";
  if (ev.type === EV.EVENT_TAG && ev.decoded.kind === "sipa" && dataBinding(ev)?.bound) {
    for (const it of flattenSipa(ev.decoded.items)) {
      const p = it.id === SIPA.SI_POLICY ? siPolicy(it.data) : undefined;
      if (p?.digest.equals(digest)) return `SI policy "${p.name}" version ${p.version}`;
    }
  }
  return undefined;
}

export function evaluateCodeIntegrity(policy: CodeIntegrityPolicy, verified: VerifiedEventLog): PolicyResult {
  const digest = Buffer.from(policy.digest, "hex");
  const pcrs = new Set(policy.pcrs);
  for (const ev of verified.events) {
    if (pcrs.has(ev.pcr) && measuredBy(ev, digest)) return { pass: true, policy: policy.name, diffs: [] };
  }
  const unverified = policy.pcrs.filter((p) => !verified.explained.some((e) => e.pcr === p));
  const diffs: PolicyDiff[] = unverified.length === policy.pcrs.length
    ? policy.pcrs.map((pcr) => ({ pcr, kind: "pcr-not-verified" as const, description: `PCR ${pcr}`, meaning: `PCR ${pcr} was not verified by the quote, so the code-integrity policy cannot be found` }))
    : [{
        pcr: policy.pcrs[0],
        kind: "missing",
        description: `code-integrity policy ${policy.name}`,
        expected: { digest: policy.digest },
        meaning: `code-integrity policy ${policy.name} was not measured in this boot (PCRs ${policy.pcrs.join(", ")})`,
      }];
  return { pass: false, policy: policy.name, diffs };
}
