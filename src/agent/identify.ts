/**
 * `tpmtrust agent identify`: the platform identifier an operator registers the host with
 * (src/attest/identity.ts): the TPM's EK publics, its EK certificates from NV, and what the TPM
 * says about its maker and firmware.
 */
import type { HostIdentity } from "../attest/identity.js";
import { TpmTrustError } from "../errors.js";
import {
  createEk,
  EK_TEMPLATES,
  type EkKind,
  FlushContext,
  getHandles,
  readEkCertificates,
  readEkChain,
  type TpmClient,
  tpmInfo,
} from "../tpm/commands/index.js";
import type { TpmtPublic } from "../tpm/types.js";
import { ekHash, ekHashFromCertificate, parseCertificateDer } from "../verify/ek/index.js";
import { fetchEkCertificate, requireCertifies, vendorFor, type OffChipOptions } from "./offchip.js";
import { persistentEks, withEk, tpm2bPublic, unsupportedByTpm } from "./tpm.js";

/** The standard EKs every identity lists (EK Credential Profile L-1 and L-2). */
const STANDARD_EKS: EkKind[] = ["rsa2048", "ecc-p256"];

/** One EK the TPM has, for the operator: which template made it, where it lives, its certificate. */
export interface IdentifiedEk {
  kind: EkKind;
  /** the EK Credential Profile template of its kind (L-1, L-2, H-1 …) */
  template: string;
  /** the manufacturer's template in this NV index made it (instead of the profile's default) */
  templateIndex?: number;
  /** the EK nonce in this NV index went into its `unique` */
  nonceIndex?: number;
  /** made from the profile's template, or found persisted by another stack */
  source: "template" | "persistent";
  /** its persistent handle, when it is persisted */
  handle?: number;
  /** base64 TPM2B_PUBLIC, as in ekPublics */
  public: string;
  /** the NV index of the EK certificate that certifies this key */
  certificateIndex?: number;
  /** where its certificate came from: NV, a file the operator gave, or the maker's service */
  certificateSource?: "nv" | "file" | "off-chip";
  /** the maker's URL of an off-chip certificate */
  certificateUrl?: string;
  /** the EK `agent activate` creates the AK under, for this kind */
  enrollment: boolean;
}

export interface IdentifyOptions {
  /** EK certificates obtained elsewhere (`--ek-cert FILE`): each must certify one of the EKs */
  ekCertificates?: { der: Buffer; from: string }[];
  /** fetch the certificates of EKs without one in NV from the maker's service (`--fetch-ek-cert`) */
  fetch?: OffChipOptions;
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
export async function identify(tpm: TpmClient, o: IdentifyOptions = {}): Promise<Identification> {
  const notes: string[] = [];
  const info = await tpmInfo(tpm);
  const certs = await readEkCertificates(tpm);
  for (const c of certs) {
    const fixes = [c.prefixed && "NV header removed", c.trailing && `${c.trailing} padding bytes dropped`].filter(Boolean);
    if (fixes.length) notes.push(`EK certificate at NV 0x${c.index.toString(16)}: ${fixes.join(", ")}`);
  }
  // the standard EKs, and every kind with a certificate or a provisioned template in NV
  const nv = new Set(await getHandles(tpm, 0x01c00000));
  const kinds = [...STANDARD_EKS, ...certs.map((c) => c.kind), ...(Object.keys(EK_TEMPLATES) as EkKind[]).filter((k) => nv.has(EK_TEMPLATES[k].templateIndex))];
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
  const publics = new Map<IdentifiedEk, TpmtPublic>();
  const add = (kind: EkKind, source: IdentifiedEk["source"], pub: TpmtPublic, publicArea: Buffer, handle?: number, from: { templateIndex?: number; nonceIndex?: number } = {}) => {
    const b64 = tpm2bPublic(publicArea).toString("base64");
    const same = eks.find((e) => e.public === b64);
    if (same) {
      if (handle !== undefined) same.handle = handle;
      return;
    }
    ekPublics.push({ alg: kind, public: b64 });
    const cert = certFor(pub);
    const e: IdentifiedEk = {
      kind,
      template: EK_TEMPLATES[kind].label,
      ...from,
      source,
      ...(handle !== undefined ? { handle } : {}),
      public: b64,
      ...(cert ? { certificateIndex: cert.index, certificateSource: "nv" as const } : {}),
      enrollment: false,
    };
    eks.push(e);
    publics.set(e, pub);
  };
  for (const kind of new Set(kinds)) {
    try {
      const ek = await createEk(tpm, kind);
      await tpm.run(FlushContext, { flushHandle: ek.handle }).catch(() => undefined);
      add(kind, "template", ek.public, ek.publicArea, undefined, {
        ...(ek.templateIndex !== undefined ? { templateIndex: ek.templateIndex } : {}),
        ...(ek.nonceIndex !== undefined ? { nonceIndex: ek.nonceIndex } : {}),
      });
    } catch (e) {
      if (!unsupportedByTpm(e)) throw e;
      notes.push(`no ${kind} EK: ${(e as Error).message}`);
    }
  }
  for (const p of await persistentEks(tpm)) add(p.kind, "persistent", p.public, p.publicArea, p.handle);
  // `agent activate --ek-alg` creates the AK under the persistent EK of its kind when there is one (loadEk), else the template's
  for (const kind of new Set(eks.map((e) => e.kind))) {
    const used = await withEk(tpm, kind, async (ek) => tpm2bPublic(ek.publicArea).toString("base64"));
    for (const e of eks) if (e.kind === kind) e.enrollment = e.public === used;
  }
  for (const e of eks.filter((x) => x.source === "persistent")) {
    notes.push(
      `the ${e.kind} EK persisted at 0x${e.handle!.toString(16)} is not the profile's ${e.template} EK (another stack made it, e.g. the Azure IoT SDK)` +
        (e.enrollment ? "; agent activate enrols with it (--ek template for the template's)" : ""),
    );
  }
  const offChip = await offChipCertificates(eks, publics, { id: info.manufacturerId, name: info.manufacturer }, o, notes);
  const chain = await readEkChain(tpm);
  for (const c of chain) notes.push(`EK certificate chain at NV 0x${c.index.toString(16)}: ${c.certificates.length} certificate(s), sent as intermediates`);
  const ekIntermediates = chain.flatMap((c) => c.certificates.map((d) => d.toString("base64")));
  if (ekPublics.length === 0) throw new TpmTrustError("ERR_TPM_RC", `the TPM made neither an RSA-2048 nor an ECC P-256 EK (${notes.join("; ")})`);
  return {
    identity: {
      ekPublics,
      ekCertificates: [...certs.map((c) => c.der), ...offChip].map((d) => d.toString("base64")),
      ...(ekIntermediates.length ? { ekIntermediates } : {}),
      tpm: { manufacturer: info.manufacturer, vendor: info.vendorString, firmware: info.firmware },
    },
    eks,
    notes,
  };
}

/**
 * The certificates of EKs that have none in NV: those the operator supplied (each must certify one
 * of the EKs), then, with `fetch`, those the TPM's maker publishes. An EK the service has no
 * certificate for is a note; no certificate at all for a TPM with none in NV fails the fetch.
 */
async function offChipCertificates(
  eks: IdentifiedEk[],
  publics: Map<IdentifiedEk, TpmtPublic>,
  manufacturer: { id: number; name: string },
  o: IdentifyOptions,
  notes: string[],
): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const s of o.ekCertificates ?? []) {
    const e = eks.find((x) => {
      try {
        return requireCertifies(s.der, publics.get(x)!, s.from) !== undefined;
      } catch (err) {
        if (err instanceof TpmTrustError && err.code === "ERR_EK_CERT_MISMATCH") return false;
        throw err;
      }
    });
    if (!e) throw new TpmTrustError("ERR_EK_CERT_MISMATCH", `the EK certificate ${s.from} certifies none of this TPM's EKs`, { from: s.from });
    if (e.certificateSource) continue;
    e.certificateSource = "file";
    out.push(s.der);
  }
  if (!o.fetch) return out;
  const vendor = vendorFor(manufacturer, o.fetch);
  let failure: unknown;
  for (const e of eks.filter((x) => !x.certificateSource)) {
    try {
      const c = await fetchEkCertificate(publics.get(e)!, vendor, o.fetch);
      e.certificateSource = "off-chip";
      e.certificateUrl = c.url;
      out.push(c.der);
      notes.push(`EK certificate of the ${e.kind} EK ${c.cached ? "from the cache" : "fetched"}: ${c.url}`);
    } catch (err) {
      if (!(err instanceof TpmTrustError) || err.code !== "ERR_EK_CERT_UNAVAILABLE") throw err;
      failure = err;
      notes.push(`no off-chip EK certificate for the ${e.kind} EK: ${err.message}`);
    }
  }
  if (failure && !eks.some((e) => e.certificateSource)) throw failure;
  return out;
}
