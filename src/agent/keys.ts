/**
 * The host's side of key release (docs/api.md § Key providers). Every call carries the host's
 * attestation token; release also proves the host's SRK with its bound AK and unwraps the answer
 * inside the TPM:
 *
 *   SRK (persistent 0x81000001, else created from the standard template) → TPM2_Certify(SRK) by the AK
 *   → POST /v1/keys/{provider}/release → TPM2_Import under the SRK → TPM2_Load → TPM2_Unseal
 */
import { decodeBase64 } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import { withEncryptedSession } from "../crypto/session.js";
import { TPMA_OBJECT, TPM_ALG, TPM_RH } from "../tpm/constants.js";
import {
  Certify,
  CreatePrimary,
  FlushContext,
  getHandles,
  Import,
  Load,
  ReadPublic,
  type TpmClient,
  Unseal,
} from "../tpm/commands/index.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bPrivate, decodeTpm2bPublic } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { withAk } from "./attest.js";
import type { ServiceClient } from "./http.js";
import type { AgentState } from "./state.js";
import { tpm2bPublic } from "./tpm.js";

/** The SRK's persistent handle (TCG TPM v2.0 Provisioning Guidance §7.5.1). */
export const SRK_HANDLE = 0x81000001;

/**
 * The Provisioning Guidance's RSA-2048 SRK template: fixedTPM|fixedParent|sensitiveDataOrigin|
 * userWithAuth|noDA|restricted|decrypt (0x00030472), AES-128-CFB, no scheme, empty unique.
 */
export function srkTemplate(): TpmtPublic {
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes:
      TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt,
    authPolicy: Buffer.alloc(0),
    parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
    unique: Buffer.alloc(0),
  };
}

const isStorageKey = (p: TpmtPublic) => {
  const need = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent;
  return (p.objectAttributes & need) === need && !(p.objectAttributes & TPMA_OBJECT.sign);
};

/** Runs `fn` with the SRK: the storage key at 0x81000001, else a primary made from the template (flushed afterwards). */
export async function withSrk<T>(tpm: TpmClient, fn: (srk: { handle: number; publicArea: Buffer }) => Promise<T>): Promise<T> {
  if ((await getHandles(tpm, SRK_HANDLE)).includes(SRK_HANDLE)) {
    const rp = await tpm.run(ReadPublic, { objectHandle: SRK_HANDLE });
    if (isStorageKey(rp.public)) return fn({ handle: SRK_HANDLE, publicArea: rp.publicArea });
  }
  const srk = await tpm.run(CreatePrimary, { primaryHandle: TPM_RH.OWNER, inPublic: srkTemplate() });
  try {
    return await fn({ handle: srk.handle, publicArea: srk.publicArea });
  } finally {
    await tpm.run(FlushContext, { flushHandle: srk.handle }).catch(() => undefined);
  }
}

/** What the service needs to trust the SRK: its TPM2B_PUBLIC and TPM2_Certify of it by the bound AK. */
export async function certifySrk(tpm: TpmClient, srk: { handle: number; publicArea: Buffer }, akHandle: number): Promise<{ public: string; attest: string; signature: string }> {
  const c = await tpm.run(Certify, { objectHandle: srk.handle, signHandle: akHandle, qualifyingData: Buffer.alloc(0) });
  return { public: tpm2bPublic(srk.publicArea).toString("base64"), attest: c.attest.toString("base64"), signature: c.signatureBytes.toString("base64") };
}

export interface ImportBlob {
  /** base64 TPM2B_PUBLIC, TPM2B_PRIVATE and TPM2B_ENCRYPTED_SECRET, as the service sends them */
  public: string;
  duplicate: string;
  inSymSeed: string;
}

/**
 * TPM2_Import of the blob under the SRK, TPM2_Load, TPM2_Unseal: the released secret. The three run
 * in a session salted to the SRK, so the unsealed secret crosses the TPM bus encrypted.
 */
export async function importAndUnseal(tpm: TpmClient, srkHandle: number, blob: ImportBlob): Promise<Buffer> {
  const objectPublic = decodeTpm2bPublic(decodeBase64(blob.public, "import.public"));
  const srk = { handle: srkHandle, public: (await tpm.run(ReadPublic, { objectHandle: srkHandle })).public };
  return withEncryptedSession(tpm, srk, async () => {
    const priv = await tpm.run(Import, {
      parentHandle: srkHandle,
      objectPublic,
      duplicate: decodeTpm2bPrivate(decodeBase64(blob.duplicate, "import.duplicate")),
      inSymSeed: decodeTpm2bEncryptedSecret(decodeBase64(blob.inSymSeed, "import.inSymSeed")),
    });
    const { handle } = await tpm.run(Load, { parentHandle: srkHandle, inPrivate: priv, inPublic: objectPublic });
    try {
      return await tpm.run(Unseal, { itemHandle: handle });
    } finally {
      await tpm.run(FlushContext, { flushHandle: handle }).catch(() => undefined);
    }
  });
}

export interface KeyCallOptions {
  /** encryption context bound into the AAD (the same must be given to decrypt) */
  context?: string;
}

interface Released {
  keyVersion: number;
  wrappedKey: string;
  srkNameHex: string;
  import: ImportBlob;
}

const path = (provider: string, op: string) => `/v1/keys/${encodeURIComponent(provider)}/${op}`;

export async function encrypt(service: ServiceClient, provider: string, plaintext: Buffer, o: KeyCallOptions = {}): Promise<{ ciphertext: Buffer; keyVersion: number }> {
  const r = await service.post<{ ciphertext: string; keyVersion: number }>(path(provider, "encrypt"), { plaintext: plaintext.toString("base64"), ...o });
  return { ciphertext: decodeBase64(r.ciphertext, "ciphertext"), keyVersion: r.keyVersion };
}

export async function decrypt(service: ServiceClient, provider: string, ciphertext: Buffer, o: KeyCallOptions = {}): Promise<{ plaintext: Buffer; keyVersion: number }> {
  const r = await service.post<{ plaintext: string; keyVersion: number }>(path(provider, "decrypt"), { ciphertext: ciphertext.toString("base64"), ...o });
  return { plaintext: decodeBase64(r.plaintext, "plaintext"), keyVersion: r.keyVersion };
}

export async function dataKey(service: ServiceClient, provider: string, o: KeyCallOptions & { size?: number } = {}): Promise<{ plaintext: Buffer; wrappedKey: Buffer; keyVersion: number }> {
  const r = await service.post<{ plaintext: string; wrappedKey: string; keyVersion: number }>(path(provider, "data-key"), o);
  return { plaintext: decodeBase64(r.plaintext, "plaintext"), wrappedKey: decodeBase64(r.wrappedKey, "wrappedKey"), keyVersion: r.keyVersion };
}

/**
 * Release to this TPM: a new key (or `wrappedKey` again), unwrapped inside the TPM with the SRK the
 * bound AK certified. Returns the secret and the wrapped key to keep.
 */
export async function release(
  tpm: TpmClient,
  service: ServiceClient,
  state: AgentState,
  provider: string,
  o: KeyCallOptions & { wrappedKey?: Buffer; size?: number } = {},
): Promise<{ secret: Buffer; wrappedKey: Buffer; keyVersion: number }> {
  return withSrk(tpm, async (srk) => {
    const proof = await withAk(tpm, state, (ak) => certifySrk(tpm, srk, ak));
    const r = await service.post<Released>(path(provider, "release"), {
      srk: proof,
      ...(o.wrappedKey ? { wrappedKey: o.wrappedKey.toString("base64") } : {}),
      ...(o.size !== undefined ? { size: o.size } : {}),
      ...(o.context !== undefined ? { context: o.context } : {}),
    });
    if (!r || typeof r.import !== "object" || typeof r.wrappedKey !== "string") throw new TpmTrustError("ERR_UNREACHABLE", "the release answer lacks the import blob");
    const secret = await importAndUnseal(tpm, srk.handle, r.import);
    return { secret, wrappedKey: decodeBase64(r.wrappedKey, "wrappedKey"), keyVersion: r.keyVersion };
  });
}
