/** Endorsement keys: the TCG EK Credential Profile 2.x templates, EK sessions, EK certificates in NV. */
import { TpmTrustError } from "../../errors.js";
import { EK_NV, TPM_ALG, TPM_ECC, TPM_RH, TPMA_OBJECT } from "../constants.js";
import { certificateFromNv, certificatesFromNvChain } from "../nvcert.js";
import { policySecretDigest } from "../policydigest.js";
import { decodeTpmtPublic, handleName } from "../structures.js";
import type { TpmtPublic, TpmtSymDefObject } from "../types.js";
import type { TpmClient } from "./client.js";
import type { CreatePrimaryResult } from "./create-primary.js";
import { TPMA_NV } from "./nv.js";
import { password, type AuthSession } from "./session.js";
import { CreatePrimary } from "./create-primary.js";
import { FlushContext } from "./flush-context.js";
import { NV_ReadPublic } from "./nv-read-public.js";
import { PolicySecret } from "./policy-secret.js";
import { getHandles } from "./get-capability.js";
import { nvReadAll } from "./nv-read.js";
import { startPolicySession } from "./start-auth-session.js";

export type EkKind = "rsa2048" | "ecc-p256" | "rsa2048-high" | "ecc-p256-high" | "ecc-p384" | "ecc-p521" | "ecc-sm2" | "rsa3072" | "rsa4096";

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
  [TPM_ALG.SM3_256]: "167860a35f2c5c3567f9c927ac56c032f3b3a6462f8d037998e7a10f77fa454a",
};

/** PolicyA: PolicySecret(TPM_RH_ENDORSEMENT) in `hashAlg` (8371…69aa for SHA-256). */
export function ekPolicyA(hashAlg: number): Buffer {
  return policySecretDigest(hashAlg, handleName(TPM_RH.ENDORSEMENT));
}

const aesCfb = (keyBits: number): TpmtSymDefObject => ({ algorithm: TPM_ALG.AES, keyBits, mode: TPM_ALG.CFB });
const sm4Cfb = (): TpmtSymDefObject => ({ algorithm: TPM_ALG.SM4, keyBits: 128, mode: TPM_ALG.CFB });

interface EkSpec {
  /** the profile's template name (L-1, L-2, H-1 …) */
  label: string;
  /** NV index of the EK certificate */
  certIndex: number;
  /** NV index of a template the manufacturer may provision instead of the default */
  templateIndex: number;
  /** NV index of an EK nonce (low range only: high range nonces SHALL NOT be populated) */
  nonceIndex?: number;
  template: () => TpmtPublic;
}

/** nameAlg, attributes, policy and symmetric algorithm, which depend only on the range and hash. */
function ekBase(high: boolean, nameAlg: number, symBits: number) {
  return {
    nameAlg,
    objectAttributes: high ? HIGH_ATTRS : LOW_ATTRS,
    authPolicy: high ? Buffer.from(POLICY_B[nameAlg], "hex") : ekPolicyA(nameAlg),
    symmetric: nameAlg === TPM_ALG.SM3_256 ? sm4Cfb() : aesCfb(symBits),
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
 * NV indices (§2.2.1.4): low range certificate, nonce, template at 0x01C00002/3/4 (RSA) and
 * 0x01C0000A/B/C (P-256); high range certificate at an even index, its template at the next one.
 */
const high = (label: string, certIndex: number, template: () => TpmtPublic): EkSpec => ({ label, certIndex, templateIndex: certIndex + 1, template });
export const EK_TEMPLATES: Record<EkKind, EkSpec> = {
  rsa2048: { label: "L-1", certIndex: EK_NV.RSA2048_CERT, templateIndex: EK_NV.RSA_TEMPLATE, nonceIndex: EK_NV.RSA_NONCE, template: rsaEk(false, TPM_ALG.SHA256, 2048, 256, 128) },
  "ecc-p256": { label: "L-2", certIndex: EK_NV.ECC_P256_CERT, templateIndex: EK_NV.ECC_TEMPLATE, nonceIndex: EK_NV.ECC_NONCE, template: eccEk(false, TPM_ALG.SHA256, TPM_ECC.NIST_P256, 32, 128) },
  "rsa2048-high": high("H-1", EK_NV.H_RSA2048_CERT, rsaEk(true, TPM_ALG.SHA256, 2048, 0, 128)),
  "ecc-p256-high": high("H-2", EK_NV.H_ECC_P256_CERT, eccEk(true, TPM_ALG.SHA256, TPM_ECC.NIST_P256, 0, 128)),
  "ecc-p384": high("H-3", EK_NV.H_ECC_P384_CERT, eccEk(true, TPM_ALG.SHA384, TPM_ECC.NIST_P384, 0, 256)),
  "ecc-p521": high("H-4", EK_NV.H_ECC_P521_CERT, eccEk(true, TPM_ALG.SHA512, TPM_ECC.NIST_P521, 0, 256)),
  // SM2 P-256 with SM3 and SM4-128-CFB, PolicyB in SM3
  "ecc-sm2": high("H-5", EK_NV.H_ECC_SM2_CERT, eccEk(true, TPM_ALG.SM3_256, TPM_ECC.SM2_P256, 0, 128)),
  rsa3072: high("H-6", EK_NV.H_RSA3072_CERT, rsaEk(true, TPM_ALG.SHA384, 3072, 0, 256)),
  rsa4096: high("H-7", EK_NV.H_RSA4096_CERT, rsaEk(true, TPM_ALG.SHA384, 4096, 0, 256)),
};

export const ekTemplate = (kind: EkKind): TpmtPublic => EK_TEMPLATES[kind].template();

/** The template an EK of `kind` is made from, and the NV indices that shaped it. */
export interface EkTemplateChoice {
  template: TpmtPublic;
  /** the manufacturer's template read from this NV index replaced the default */
  templateIndex?: number;
  /** the EK nonce read from this NV index was put into `unique` */
  nonceIndex?: number;
}

/**
 * The template of the EK of `kind` as the EK Credential Profile 2.x (§2.2.1.5) has it: the
 * template in NV when the manufacturer provisioned one, else the default; then, in the low range,
 * the EK nonce in NV (when present) as the start of `unique`, zero-padded to 256 bytes (RSA) or
 * as x padded to 32 bytes with y 32 zero bytes (ECC), as tpm2_createek -t does.
 */
export async function ekTemplateFor(client: TpmClient, kind: EkKind): Promise<EkTemplateChoice> {
  const spec = EK_TEMPLATES[kind];
  const defined = new Set(await getHandles(client, 0x01c00000));
  const out: EkTemplateChoice = { template: spec.template() };
  if (defined.has(spec.templateIndex)) {
    const data = await readNvWhole(client, spec.templateIndex);
    if (data) {
      out.template = decodeTpmtPublic(data);
      out.templateIndex = spec.templateIndex;
    }
  }
  if (spec.nonceIndex !== undefined && defined.has(spec.nonceIndex)) {
    const nonce = await readNvWhole(client, spec.nonceIndex);
    if (nonce?.length) {
      const t = out.template;
      const pad = (n: number) => {
        if (nonce.length > n) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `the EK nonce at NV 0x${spec.nonceIndex!.toString(16)} has ${nonce.length} bytes, more than ${n}`);
        return Buffer.concat([nonce, Buffer.alloc(n - nonce.length)]);
      };
      if (t.type === TPM_ALG.RSA) out.template = { ...t, unique: pad(256) };
      else if (t.type === TPM_ALG.ECC) out.template = { ...t, unique: { x: pad(32), y: Buffer.alloc(32) } };
      out.nonceIndex = spec.nonceIndex;
    }
  }
  return out;
}

/**
 * Creates the EK of `kind` in the endorsement hierarchy (a transient object; flush it when done),
 * from the template and nonce the manufacturer provisioned in NV when there are (ekTemplateFor).
 */
export async function createEk(
  client: TpmClient,
  kind: EkKind = "rsa2048",
  opts: { endorsementAuth?: AuthSession } = {},
): Promise<CreatePrimaryResult & Omit<EkTemplateChoice, "template">> {
  const { template, ...from } = await ekTemplateFor(client, kind);
  return { ...(await client.run(CreatePrimary, { primaryHandle: TPM_RH.ENDORSEMENT, inPublic: template, auth: opts.endorsementAuth })), ...from };
}

/**
 * Authorization for using the EK as a key (ActivateCredential, Create/Load under it). EKs without
 * userWithAuth (the low range) accept only their policy: a one-shot policy session in the EK's
 * nameAlg with PolicySecret(TPM_RH_ENDORSEMENT). Others use their (empty) authValue.
 */
export async function ekAuth(client: TpmClient, ek: TpmtPublic, opts: { endorsementAuth?: AuthSession } = {}): Promise<AuthSession> {
  if (ek.objectAttributes & TPMA_OBJECT.userWithAuth) return password();
  const session = await startPolicySession(client, { hashAlg: ek.nameAlg });
  try {
    await client.run(PolicySecret, { authHandle: TPM_RH.ENDORSEMENT, policySession: session.handle, auth: opts.endorsementAuth });
  } catch (e) {
    await client.run(FlushContext, { flushHandle: session.handle }).catch(() => undefined);
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
  const defined = new Set(await getHandles(client, 0x01c00000));
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
  const { nvPublic } = await client.run(NV_ReadPublic, { nvIndex: index });
  const a = nvPublic.attributes;
  if (!(a & TPMA_NV.WRITTEN)) return undefined;
  const authHandle = a & TPMA_NV.AUTHREAD ? index : a & TPMA_NV.OWNERREAD ? TPM_RH.OWNER : TPM_RH.PLATFORM;
  return nvReadAll(client, index, { authHandle, size: nvPublic.dataSize });
}

/**
 * The EK certificate chain in NV: every written index of the chain range in order, each holding
 * one or more concatenated DER certificates (intermediates, possibly the root). Used as
 * intermediates for path building only; trust still comes from the configured roots.
 */
export async function readEkChain(client: TpmClient): Promise<{ index: number; certificates: Buffer[] }[]> {
  const handles = (await getHandles(client, EK_CHAIN_FIRST)).filter((h) => h >= EK_CHAIN_FIRST && h <= EK_CHAIN_LAST);
  const out: { index: number; certificates: Buffer[] }[] = [];
  for (const index of handles) {
    const data = await readNvWhole(client, index);
    if (data) out.push({ index, certificates: certificatesFromNvChain(data) });
  }
  return out;
}
