/**
 * `tpmtrust agent identify`: the platform identifier an operator registers the host with
 * (src/attest/identity.ts): the TPM's EK publics, its EK certificates from NV, and what the TPM
 * says about its maker and firmware.
 */
import type { HostIdentity } from "../attest/identity.js";
import { TpmTrustError } from "../errors.js";
import { readEkCertificates, readEkChain, tpmInfo, type EkKind, type TpmClient } from "../tpm/commands/index.js";
import { tpm2bPublic, unsupportedByTpm, withEk } from "./tpm.js";

/** The standard EKs every identity lists (EK Credential Profile L-1 and L-2). */
const STANDARD_EKS: EkKind[] = ["rsa2048", "ecc-p256"];

export interface Identification {
  identity: HostIdentity;
  /** what the TPM could not provide (e.g. no ECC EK), for the operator */
  notes: string[];
}

/**
 * Reads the identity: the RSA-2048 and ECC P-256 EKs (persistent ones when present, else made from
 * the templates), plus the EK of every other template whose certificate is in NV, so each
 * certificate comes with its key; all EK certificates (low and high range indices); and the TPM's
 * manufacturer, vendor string and firmware version (TPM_PT_MANUFACTURER, VENDOR_STRING_1..4,
 * FIRMWARE_VERSION_1).
 */
export async function identify(tpm: TpmClient): Promise<Identification> {
  const notes: string[] = [];
  const info = await tpmInfo(tpm);
  const certs = await readEkCertificates(tpm);
  for (const c of certs) {
    const fixes = [c.prefixed && "NV header removed", c.trailing && `${c.trailing} padding bytes dropped`].filter(Boolean);
    if (fixes.length) notes.push(`EK certificate at NV 0x${c.index.toString(16)}: ${fixes.join(", ")}`);
  }
  const kinds = [...STANDARD_EKS, ...certs.map((c) => c.kind).filter((k) => !STANDARD_EKS.includes(k))];
  const ekPublics: HostIdentity["ekPublics"] = [];
  for (const kind of new Set(kinds)) {
    try {
      const publicArea = await withEk(tpm, kind, async (ek) => ek.publicArea);
      ekPublics.push({ alg: kind, public: tpm2bPublic(publicArea).toString("base64") });
    } catch (e) {
      if (!unsupportedByTpm(e)) throw e;
      notes.push(`no ${kind} EK: ${(e as Error).message}`);
    }
  }
  const chain = await readEkChain(tpm);
  for (const c of chain) notes.push(`EK certificate chain at NV 0x${c.index.toString(16)}: ${c.certificates.length} certificate(s), sent as intermediates`);
  const ekIntermediates = chain.flatMap((c) => c.certificates.map((d) => d.toString("base64")));
  if (ekPublics.length === 0) throw new TpmTrustError("ERR_TPM_RC", `the TPM made neither an RSA-2048 nor an ECC P-256 EK (${notes.join("; ")})`);
  return {
    identity: {
      ekPublics,
      ekCertificates: certs.map((c) => c.der.toString("base64")),
      ...(ekIntermediates.length ? { ekIntermediates } : {}),
      tpm: { manufacturer: info.manufacturer, vendor: info.vendorString, firmware: info.firmware },
    },
    notes,
  };
}
