/**
 * `tpmtrust agent identify`: the platform identifier an operator registers the host with
 * (src/attest/identity.ts): the TPM's EK publics, its EK certificates from NV, and what the TPM
 * says about its maker and firmware.
 */
import type { HostIdentity } from "../attest/identity.js";
import { TpmTrustError } from "../errors.js";
import { createEk, EK_TEMPLATES, readEkCertificates, readEkChain, tpmInfo, type EkKind, type TpmClient } from "../tpm/commands/index.js";
import type { TpmtPublic } from "../tpm/types.js";
import { ekHash, ekHashFromCertificate, parseCertificateDer } from "../verify/ek/index.js";
import { persistentEks, withEk, tpm2bPublic, unsupportedByTpm } from "./tpm.js";

/** The standard EKs every identity lists (EK Credential Profile L-1 and L-2). */
const STANDARD_EKS: EkKind[] = ["rsa2048", "ecc-p256"];

/** One EK the TPM has, for the operator: which template made it, where it lives, its certificate. */
export interface IdentifiedEk {
  kind: EkKind;
  /** the EK Credential Profile template of its kind (L-1, L-2, H-1 …) */
  template: string;
  /** made from the profile's template, or found persisted by another stack */
  source: "template" | "persistent";
  /** its persistent handle, when it is persisted */
  handle?: number;
  /** base64 TPM2B_PUBLIC, as in ekPublics */
  public: string;
  /** the NV index of the EK certificate that certifies this key */
  certificateIndex?: number;
  /** the EK `agent register` enrols with for this kind */
  enrollment: boolean;
}

export interface Identification {
  identity: HostIdentity;
  eks: IdentifiedEk[];
  /** what the TPM could not provide (e.g. no ECC EK), for the operator */
  notes: string[];
}

/**
 * Reads the identity: the RSA-2048 and ECC P-256 EKs made from the profile's templates, plus the EK
 * of every other template whose certificate is in NV, so each certificate comes with its key; EKs
 * other stacks persisted in the EK handle range when they differ from those; all EK certificates (low and high range indices); and the TPM's
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
  const eks: IdentifiedEk[] = [];
  const certHash = (der: Buffer) => {
    try {
      return ekHashFromCertificate(parseCertificateDer(der));
    } catch {
      return undefined;
    }
  };
  const certFor = (pub: TpmtPublic) => certs.find((c) => certHash(c.der) === ekHash(pub));
  const add = (kind: EkKind, source: IdentifiedEk["source"], pub: TpmtPublic, publicArea: Buffer, handle?: number) => {
    const b64 = tpm2bPublic(publicArea).toString("base64");
    const same = eks.find((e) => e.public === b64);
    if (same) {
      if (handle !== undefined) same.handle = handle;
      return;
    }
    ekPublics.push({ alg: kind, public: b64 });
    const cert = certFor(pub);
    eks.push({ kind, template: EK_TEMPLATES[kind].label, source, ...(handle !== undefined ? { handle } : {}), public: b64, ...(cert ? { certificateIndex: cert.index } : {}), enrollment: false });
  };
  for (const kind of new Set(kinds)) {
    try {
      const ek = await createEk(tpm, kind);
      await tpm.flushContext(ek.handle).catch(() => undefined);
      add(kind, "template", ek.public, ek.publicArea);
    } catch (e) {
      if (!unsupportedByTpm(e)) throw e;
      notes.push(`no ${kind} EK: ${(e as Error).message}`);
    }
  }
  for (const p of await persistentEks(tpm)) add(p.kind, "persistent", p.public, p.publicArea, p.handle);
  // `agent register --ek-alg` enrols with the persistent EK of its kind when there is one (loadEk), else the template's
  for (const kind of new Set(eks.map((e) => e.kind))) {
    const used = await withEk(tpm, kind, async (ek) => tpm2bPublic(ek.publicArea).toString("base64"));
    for (const e of eks) if (e.kind === kind) e.enrollment = e.public === used;
  }
  for (const e of eks.filter((x) => x.source === "persistent")) {
    notes.push(
      `the ${e.kind} EK persisted at 0x${e.handle!.toString(16)} is not the profile's ${e.template} EK (another stack made it, e.g. the Azure IoT SDK)` +
        (e.enrollment ? "; agent register enrols with it" : ""),
    );
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
    eks,
    notes,
  };
}
