/**
 * Human-readable JSON views of TPM structures (for `tpmtrust tpm inspect` and `--json` output):
 * algorithm and attribute names next to the raw numbers, byte strings as hex, u64 as decimal strings.
 */
import { TpmTrustError } from "../errors.js";
import { algName, ECC_CURVES, HASH_ALGS, TPMA_OBJECT, TPM_ALG, TPM_ST } from "./constants.js";
import * as S from "./structures.js";
import type { TpmsAttest, TpmtPublic } from "./types.js";

const ST_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TPM_ST).map(([k, v]) => [v, `TPM_ST_${k}`]));

/** Names of the TPMA_OBJECT bits set in `attrs`. */
export function attributeNames(attrs: number): string[] {
  return Object.entries(TPMA_OBJECT)
    .filter(([, bit]) => (attrs & bit) !== 0)
    .map(([name]) => name);
}

/** Recursively: Buffers to hex, bigints to strings. */
export function jsonView(v: unknown): unknown {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.map(jsonView);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonView(x)]));
  return v;
}

function describePublic(p: TpmtPublic): Record<string, unknown> {
  const extra: Record<string, unknown> = {
    typeName: algName(p.type),
    nameAlgName: algName(p.nameAlg),
    attributeNames: attributeNames(p.objectAttributes),
    name: S.objectName(p).toString("hex"),
  };
  if (p.type === TPM_ALG.ECC) extra.curve = ECC_CURVES[p.parameters.curveID]?.name ?? `0x${p.parameters.curveID.toString(16)}`;
  return { ...(jsonView(p) as object), ...extra };
}

export function describeAttest(a: TpmsAttest): Record<string, unknown> {
  const out = jsonView(a) as Record<string, unknown>;
  out.typeName = ST_NAMES[a.type];
  if (a.type === TPM_ST.ATTEST_QUOTE) {
    (out.attested as Record<string, unknown>).pcrSelectDescribed = a.attested.pcrSelect.map((s) => ({
      bank: HASH_ALGS[s.hash]?.name ?? algName(s.hash),
      pcrs: S.selectedPcrs(s),
    }));
  }
  return out;
}

/** Structures `tpm inspect` knows, with their decoders and views. */
const INSPECT_TYPES: Record<string, (b: Uint8Array) => unknown> = {
  TPM2B_PUBLIC: (b) => describePublic(S.decodeTpm2bPublic(b)),
  TPMT_PUBLIC: (b) => describePublic(S.decodeTpmtPublic(b)),
  TPMS_ATTEST: (b) => describeAttest(S.decodeTpmsAttest(b)),
  TPM2B_ATTEST: (b) => describeAttest(S.decodeTpm2bAttest(b)),
  TPMT_SIGNATURE: (b) => {
    const s = S.decodeTpmtSignature(b);
    return { ...(jsonView(s) as object), sigAlgName: algName(s.sigAlg), ...("hash" in s ? { hashName: algName(s.hash) } : {}) };
  },
  TPML_PCR_SELECTION: (b) => S.decodeTpmlPcrSelection(b).map((s) => ({ ...(jsonView(s) as object), bank: algName(s.hash), pcrs: S.selectedPcrs(s) })),
  TPML_DIGEST: (b) => jsonView(S.decodeTpmlDigest(b)),
  TPMS_CREATION_DATA: (b) => jsonView(S.decodeTpmsCreationData(b)),
  TPM2B_CREATION_DATA: (b) => jsonView(S.decodeTpm2bCreationData(b)),
  TPMT_SENSITIVE: (b) => jsonView(S.decodeTpmtSensitive(b)),
  TPM2B_SENSITIVE: (b) => jsonView(S.decodeTpm2bSensitive(b)),
  TPM2B_PRIVATE: (b) => ({ private: jsonView(S.decodeTpm2bPrivate(b)) }),
  TPM2B_ID_OBJECT: (b) => jsonView(S.decodeTpm2bIdObject(b)),
  TPM2B_ENCRYPTED_SECRET: (b) => ({ secret: jsonView(S.decodeTpm2bEncryptedSecret(b)) }),
  TPMS_NV_PUBLIC: (b) => {
    const n = S.decodeTpmsNvPublic(b);
    return { ...(jsonView(n) as object), nvIndexHex: `0x${n.nvIndex.toString(16)}`, name: S.nvName(n).toString("hex") };
  },
  TPM2B_NV_PUBLIC: (b) => {
    const n = S.decodeTpm2bNvPublic(b);
    return { ...(jsonView(n) as object), nvIndexHex: `0x${n.nvIndex.toString(16)}`, name: S.nvName(n).toString("hex") };
  },
};

/** Types recognisable without a hint, most distinctive first. */
const AUTO_ORDER = ["TPMS_ATTEST", "TPM2B_ATTEST", "TPM2B_PUBLIC", "TPMT_PUBLIC", "TPMT_SIGNATURE", "TPM2B_NV_PUBLIC", "TPMS_CREATION_DATA", "TPM2B_CREATION_DATA"];

/** Decodes `bytes` as `type`, or detects the type; ambiguous input asks for --type. */
export function inspect(bytes: Uint8Array, type?: string): { type: string; value: unknown } {
  if (type) {
    const t = type.toUpperCase();
    const dec = INSPECT_TYPES[t];
    if (!dec) throw new TpmTrustError("ERR_USAGE", `unknown type ${type}; one of ${Object.keys(INSPECT_TYPES).join(", ")}`);
    return { type: t, value: dec(bytes) };
  }
  const hits: { type: string; value: unknown }[] = [];
  for (const t of AUTO_ORDER) {
    try {
      hits.push({ type: t, value: INSPECT_TYPES[t](bytes) });
    } catch {
      // not this type
    }
  }
  // An attestation's magic makes it unambiguous; otherwise exactly one reading must fit.
  const attest = hits.find((h) => h.type === "TPMS_ATTEST" || h.type === "TPM2B_ATTEST");
  if (attest) return attest;
  if (hits.length === 1) return hits[0];
  if (hits.length === 0) throw new TpmTrustError("ERR_PARSE_FORMAT", "not a structure tpmtrust recognises; give --type");
  throw new TpmTrustError("ERR_PARSE_FORMAT", `ambiguous: parses as ${hits.map((h) => h.type).join(" and ")}; give --type`, { candidates: hits.map((h) => h.type) });
}
