/**
 * The platform identifier `tpmtrust agent identify` writes and `tpmtrust hosts add` / `POST /v1/hosts`
 * read (the Add-HgsAttestationTpmHost input of tpmtrust):
 *
 *   { "ekPublics": [{ "alg": "rsa2048", "public": "<base64 TPM2B_PUBLIC>" }, …],
 *     "ekCertificates": ["<base64 DER>", …],
 *     "ekIntermediates": ["<base64 DER>", …],
 *     "tpm": { "manufacturer": "IFX", "vendor": "SLB9670", "firmware": "7.85" } }
 *
 * `ekIntermediates` (optional) are the certificates of the TPM's EK certificate chain NV indices
 * (0x01C00100…), used for path building only.
 *
 * `alg` names the EK template (src/tpm/commands/ek.ts EkKind); `public` is the EK exactly as the TPM
 * marshals it, with its u16 size; certificates are DER as read from NV (a NV header or padding is
 * tolerated by the certificate loader, not here). Unknown fields are rejected, never ignored.
 */
import { BASE64_PATTERN, decodeBase64 } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import { TPM_ALG, TPMA_OBJECT } from "../tpm/constants.js";
import { EK_TEMPLATES, type EkKind } from "../tpm/commands/ek.js";
import { decodeTpm2bPublic, hashOf } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";

export interface HostIdentity {
  ekPublics: { alg: EkKind; public: string }[];
  ekCertificates: string[];
  ekIntermediates?: string[];
  tpm: { manufacturer: string; vendor: string; firmware: string };
}

/** A HostIdentity with its binary parts decoded and each EK's Name computed. */
export interface DecodedIdentity {
  eks: { alg: EkKind; public: TpmtPublic; /** TPMT_PUBLIC bytes as sent */ publicArea: Buffer; name: Buffer }[];
  ekCertificates: Buffer[];
  ekIntermediates: Buffer[];
  tpm: HostIdentity["tpm"];
}

const EK_ALGS = Object.keys(EK_TEMPLATES) as EkKind[];
const MAX_EKS = 16;
const MAX_CERTS = 16;
/** JSON schema of HostIdentity (for fastify and OpenAPI); decodeHostIdentity checks the same and more. */
export const HOST_IDENTITY_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["ekPublics", "ekCertificates", "tpm"],
  properties: {
    ekPublics: {
      type: "array",
      minItems: 1,
      maxItems: MAX_EKS,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["alg", "public"],
        properties: { alg: { type: "string", enum: EK_ALGS }, public: { type: "string", minLength: 4, maxLength: 4096, pattern: BASE64_PATTERN } },
      },
    },
    ekCertificates: { type: "array", maxItems: MAX_CERTS, items: { type: "string", minLength: 4, maxLength: 65536, pattern: BASE64_PATTERN } },
    ekIntermediates: { type: "array", maxItems: MAX_CERTS, items: { type: "string", minLength: 4, maxLength: 65536, pattern: BASE64_PATTERN } },
    tpm: {
      type: "object",
      additionalProperties: false,
      required: ["manufacturer", "vendor", "firmware"],
      properties: { manufacturer: { type: "string", maxLength: 64 }, vendor: { type: "string", maxLength: 256 }, firmware: { type: "string", maxLength: 64 } },
    },
  },
} as const;

function invalid(field: string, message: string): TpmTrustError {
  return new TpmTrustError("ERR_VALIDATION", `${field}: ${message}`, { field });
}

function object(v: unknown, field: string, keys: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalid(field, "must be an object");
  const o = v as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => !keys.includes(k) && !optional.includes(k));
  if (extra.length) throw invalid(field, `unknown field ${JSON.stringify(extra[0])}`);
  for (const k of keys) if (!(k in o)) throw invalid(field, `missing field ${JSON.stringify(k)}`);
  return o;
}

function array(v: unknown, field: string, min: number, max: number): unknown[] {
  if (!Array.isArray(v)) throw invalid(field, "must be an array");
  if (v.length < min || v.length > max) throw invalid(field, `must have ${min} to ${max} entries, not ${v.length}`);
  return v;
}

function text(v: unknown, field: string, max: number): string {
  if (typeof v !== "string") throw invalid(field, "must be a string");
  if (v.length > max) throw invalid(field, `longer than ${max} characters`);
  return v;
}

/**
 * A TPM2B_PUBLIC as sent, decoded, with its Name = nameAlg ‖ H_nameAlg(TPMT_PUBLIC) (Part 1 §16)
 * taken over the bytes as sent: what the TPM computed, whatever a re-encoding would give.
 */
export function decodePublic(tpm2b: Buffer, field: string): { public: TpmtPublic; publicArea: Buffer; name: Buffer } {
  let pub: TpmtPublic;
  try {
    pub = decodeTpm2bPublic(tpm2b);
  } catch (err) {
    if (err instanceof TpmTrustError) throw new TpmTrustError(err.code, `${field}: ${err.message}`, { ...err.details, field });
    throw err;
  }
  const publicArea = tpm2b.subarray(2);
  // TPMT_PUBLIC starts type (u16) ‖ nameAlg (u16): the Name's algorithm prefix is bytes 2..4
  return { public: pub, publicArea, name: Buffer.concat([publicArea.subarray(2, 4), hashOf(pub.nameAlg, publicArea)]) };
}

/** The EK of `alg`: a restricted decryption key of the template's type, size or curve, and nameAlg. */
function checkEkMatches(pub: TpmtPublic, alg: EkKind, field: string): void {
  const t = EK_TEMPLATES[alg].template();
  const same =
    pub.type === t.type &&
    pub.nameAlg === t.nameAlg &&
    (pub.type === TPM_ALG.RSA && t.type === TPM_ALG.RSA
      ? pub.parameters.keyBits === t.parameters.keyBits
      : pub.type === TPM_ALG.ECC && t.type === TPM_ALG.ECC && pub.parameters.curveID === t.parameters.curveID);
  if (!same) throw invalid(field, `the key does not match EK template ${alg} (type, size or curve, nameAlg)`);
  requireEkAttributes(pub, field);
}

/** An EK is a restricted decryption key bound to its TPM, as the TCG EK Credential Profile templates make it (fixedTPM, fixedParent, restricted, decrypt, not sign). */
export function requireEkAttributes(pub: TpmtPublic, field: string): void {
  const need = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent;
  if ((pub.objectAttributes & need) !== need || pub.objectAttributes & TPMA_OBJECT.sign) {
    throw invalid(field, "an EK is a restricted decryption key (fixedTPM, fixedParent, restricted, decrypt, not sign)");
  }
}

/** Validates and decodes a HostIdentity (parsed JSON). ERR_VALIDATION or ERR_PARSE_* naming the field. */
export function decodeHostIdentity(json: unknown): DecodedIdentity {
  const o = object(json, "identity", ["ekPublics", "ekCertificates", "tpm"], ["ekIntermediates"]);
  const eks = array(o.ekPublics, "ekPublics", 1, MAX_EKS).map((e, i) => {
    const field = `ekPublics[${i}]`;
    const entry = object(e, field, ["alg", "public"]);
    if (typeof entry.alg !== "string" || !(EK_ALGS as string[]).includes(entry.alg)) throw invalid(`${field}.alg`, `must be one of ${EK_ALGS.join(", ")}`);
    const alg = entry.alg as EkKind;
    const ek = decodePublic(decodeBase64(entry.public, `${field}.public`), `${field}.public`);
    checkEkMatches(ek.public, alg, `${field}.public`);
    return { alg, ...ek };
  });
  const names = new Set<string>();
  for (const [i, ek] of eks.entries()) {
    const n = ek.name.toString("hex");
    if (names.has(n)) throw invalid(`ekPublics[${i}]`, "the same EK is listed twice");
    names.add(n);
  }
  const ekCertificates = array(o.ekCertificates, "ekCertificates", 0, MAX_CERTS).map((c, i) => decodeBase64(c, `ekCertificates[${i}]`));
  const ekIntermediates =
    o.ekIntermediates === undefined ? [] : array(o.ekIntermediates, "ekIntermediates", 0, MAX_CERTS).map((c, i) => decodeBase64(c, `ekIntermediates[${i}]`));
  const t = object(o.tpm, "tpm", ["manufacturer", "vendor", "firmware"]);
  const tpm = { manufacturer: text(t.manufacturer, "tpm.manufacturer", 64), vendor: text(t.vendor, "tpm.vendor", 256), firmware: text(t.firmware, "tpm.firmware", 64) };
  return { eks, ekCertificates, ekIntermediates, tpm };
}
