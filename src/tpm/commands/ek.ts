/** Endorsement keys: the TCG EK Credential Profile 2.x templates, EK sessions, EK certificates in NV. */
import { EK_NV, TPM_ALG, TPM_ECC, TPM_RH, TPMA_OBJECT } from "../constants.js";
import { certificateFromNv, certificatesFromNvChain } from "../nvcert.js";
import { policySecretDigest } from "../policydigest.js";
import { handleName } from "../structures.js";
import type { TpmtPublic, TpmtSymDefObject } from "../types.js";
import type { TpmClient } from "./client.js";
import type { CreatePrimaryResult } from "./create-primary.js";
import { TPMA_NV } from "./nv.js";
import { password, type AuthSession } from "./session.js";

export type EkKind = "rsa2048" | "ecc-p256" | "rsa2048-high" | "ecc-p256-high" | "ecc-p384" | "ecc-p521" | "rsa3072" | "rsa4096";

// fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt (0x000300B2);
// the high range adds userWithAuth (0x000300F2).
const LOW_ATTRS =
  TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.adminWithPolicy | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;
const HIGH_ATTRS = LOW_ATTRS | TPMA_OBJECT.userWithAuth;

/** EK Credential Profile 2.x PolicyB digests (PolicyOR of PolicyA and PolicyC) of the high range templates. */
const POLICY_B: Record<number, string> = {
  [TPM_ALG.SHA256]: "ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0",
  [TPM_ALG.SHA384]: "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12",
  [TPM_ALG.SHA512]:
    "b8221ca69e8550a4914de3faa6a18c072cc01208073a928d5d66d59ef79e49a429c41a6b269571d57edb25fbdb1838425608b413cd616a5f6db5b6071af99bea",
};

/** PolicyA: PolicySecret(TPM_RH_ENDORSEMENT) in `hashAlg` (8371…69aa for SHA-256). */
export function ekPolicyA(hashAlg: number): Buffer {
  return policySecretDigest(hashAlg, handleName(TPM_RH.ENDORSEMENT));
}

const aesCfb = (keyBits: number): TpmtSymDefObject => ({ algorithm: TPM_ALG.AES, keyBits, mode: TPM_ALG.CFB });

interface EkSpec {
  /** the profile's template name (L-1, L-2, H-1 …) */
  label: string;
  /** NV index of the EK certificate */
  certIndex: number;
  template: () => TpmtPublic;
}

/** nameAlg, attributes, policy and symmetric algorithm, which depend only on the range and hash. */
function ekBase(high: boolean, nameAlg: number, symBits: number) {
  return {
    nameAlg,
    objectAttributes: high ? HIGH_ATTRS : LOW_ATTRS,
    authPolicy: high ? Buffer.from(POLICY_B[nameAlg], "hex") : ekPolicyA(nameAlg),
    symmetric: aesCfb(symBits),
  };
}

function rsaEk(high: boolean, nameAlg: number, keyBits: number, uniqueZeros: number, symBits: number): () => TpmtPublic {
  return () => {
    const { symmetric, ...base } = ekBase(high, nameAlg, symBits);
    return { type: TPM_ALG.RSA, ...base, parameters: { symmetric, scheme: { scheme: TPM_ALG.NULL }, keyBits, exponent: 0 }, unique: Buffer.alloc(uniqueZeros) };
  };
}

function eccEk(high: boolean, nameAlg: number, curveID: number, coordZeros: number, symBits: number): () => TpmtPublic {
  return () => {
    const { symmetric, ...base } = ekBase(high, nameAlg, symBits);
    const parameters = { symmetric, scheme: { scheme: TPM_ALG.NULL }, curveID, kdf: { scheme: TPM_ALG.NULL } };
    return { type: TPM_ALG.ECC, ...base, parameters, unique: { x: Buffer.alloc(coordZeros), y: Buffer.alloc(coordZeros) } };
  };
}

/**
 * TCG EK Credential Profile 2.x (B.3 low range, B.4 high range) templates. Low range: PolicyA,
 * no userWithAuth, unique = zeros of the key size. High range: PolicyB, userWithAuth, empty unique.
 */
export const EK_TEMPLATES: Record<EkKind, EkSpec> = {
  rsa2048: { label: "L-1", certIndex: EK_NV.RSA2048_CERT, template: rsaEk(false, TPM_ALG.SHA256, 2048, 256, 128) },
  "ecc-p256": { label: "L-2", certIndex: EK_NV.ECC_P256_CERT, template: eccEk(false, TPM_ALG.SHA256, TPM_ECC.NIST_P256, 32, 128) },
  "rsa2048-high": { label: "H-1", certIndex: EK_NV.H_RSA2048_CERT, template: rsaEk(true, TPM_ALG.SHA256, 2048, 0, 128) },
  "ecc-p256-high": { label: "H-2", certIndex: EK_NV.H_ECC_P256_CERT, template: eccEk(true, TPM_ALG.SHA256, TPM_ECC.NIST_P256, 0, 128) },
  "ecc-p384": { label: "H-3", certIndex: EK_NV.H_ECC_P384_CERT, template: eccEk(true, TPM_ALG.SHA384, TPM_ECC.NIST_P384, 0, 256) },
  "ecc-p521": { label: "H-4", certIndex: EK_NV.H_ECC_P521_CERT, template: eccEk(true, TPM_ALG.SHA512, TPM_ECC.NIST_P521, 0, 256) },
  rsa3072: { label: "H-6", certIndex: EK_NV.H_RSA3072_CERT, template: rsaEk(true, TPM_ALG.SHA384, 3072, 0, 256) },
  rsa4096: { label: "H-7", certIndex: EK_NV.H_RSA4096_CERT, template: rsaEk(true, TPM_ALG.SHA384, 4096, 0, 256) },
};

export const ekTemplate = (kind: EkKind): TpmtPublic => EK_TEMPLATES[kind].template();

/** Creates the standard EK of `kind` in the endorsement hierarchy (a transient object; flush it when done). */
export function createEk(client: TpmClient, kind: EkKind = "rsa2048", opts: { endorsementAuth?: AuthSession } = {}): Promise<CreatePrimaryResult> {
  return client.createPrimary(TPM_RH.ENDORSEMENT, ekTemplate(kind), { auth: opts.endorsementAuth });
}

/**
 * Authorization for using the EK as a key (ActivateCredential, Create/Load under it). EKs without
 * userWithAuth (the low range) accept only their policy: a one-shot policy session in the EK's
 * nameAlg with PolicySecret(TPM_RH_ENDORSEMENT). Others use their (empty) authValue.
 */
export async function ekAuth(client: TpmClient, ek: TpmtPublic, opts: { endorsementAuth?: AuthSession } = {}): Promise<AuthSession> {
  if (ek.objectAttributes & TPMA_OBJECT.userWithAuth) return password();
  const session = await client.startAuthSession({ hashAlg: ek.nameAlg });
  try {
    await client.policySecret(TPM_RH.ENDORSEMENT, session, { auth: opts.endorsementAuth });
  } catch (e) {
    await client.flushContext(session.handle).catch(() => undefined);
    throw e;
  }
  return session;
}

export interface EkCertificate {
  index: number;
  kind: EkKind;
  der: Buffer;
  /** the NV data had the `10 01 00 ‖ length` prefix */
  prefixed: boolean;
  /** padding bytes after the certificate that were dropped */
  trailing: number;
}

/**
 * Reads every EK certificate the TPM holds in the EK certificate NV indices (low and high range),
 * authorizing with the index itself (AUTHREAD), else the owner, else the platform.
 */
export async function readEkCertificates(client: TpmClient): Promise<EkCertificate[]> {
  const defined = new Set(await client.getHandles(0x01c00000));
  const out: EkCertificate[] = [];
  for (const [kind, spec] of Object.entries(EK_TEMPLATES) as [EkKind, EkSpec][]) {
    if (!defined.has(spec.certIndex)) continue;
    const data = await readNvWhole(client, spec.certIndex);
    if (data) out.push({ index: spec.certIndex, kind, ...certificateFromNv(data) });
  }
  return out;
}

/** TCG EK Credential Profile 2.x §2.2.1.5: the NV range of EK certificate chains. */
export const EK_CHAIN_FIRST = 0x01c00100;
export const EK_CHAIN_LAST = 0x01c001ff;

/** Reads one written NV index whole, authorizing with the index (AUTHREAD), else owner, else platform. */
async function readNvWhole(client: TpmClient, index: number): Promise<Buffer | undefined> {
  const { nvPublic } = await client.nvReadPublic(index);
  const a = nvPublic.attributes;
  if (!(a & TPMA_NV.WRITTEN)) return undefined;
  const authHandle = a & TPMA_NV.AUTHREAD ? index : a & TPMA_NV.OWNERREAD ? TPM_RH.OWNER : TPM_RH.PLATFORM;
  return client.nvRead(index, { authHandle, size: nvPublic.dataSize });
}

/**
 * The EK certificate chain in NV: every written index of the chain range in order, each holding
 * one or more concatenated DER certificates (intermediates, possibly the root). Used as
 * intermediates for path building only; trust still comes from the configured roots.
 */
export async function readEkChain(client: TpmClient): Promise<{ index: number; certificates: Buffer[] }[]> {
  const handles = (await client.getHandles(EK_CHAIN_FIRST)).filter((h) => h >= EK_CHAIN_FIRST && h <= EK_CHAIN_LAST);
  const out: { index: number; certificates: Buffer[] }[] = [];
  for (const index of handles) {
    const data = await readNvWhole(client, index);
    if (data) out.push({ index, certificates: certificatesFromNvChain(data) });
  }
  return out;
}
