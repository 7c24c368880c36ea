/** The agent's TPM: opening it, and the endorsement keys it works under. */
import { EK_PERSISTENT, TPM_ALG, TPMA_OBJECT } from "../tpm/constants.js";
import { createEk, EK_TEMPLATES, type EkKind, FlushContext, getHandles, ReadPublic, TpmClient } from "../tpm/commands/index.js";
import { TpmTrustError } from "../errors.js";
import { TpmRcError } from "../tpm/rc.js";
import { openTransport } from "../tpm/transport/index.js";
import type { TpmtPublic } from "../tpm/types.js";

/** Opens the TPM a `--tpm` value names (ERR_USAGE for a bad value, ERR_TPM_TRANSPORT when it cannot be reached). */
export async function openTpm(spec: string): Promise<TpmClient> {
  return new TpmClient(await openTransport(spec));
}

/** Runs `fn` with a client for `spec` and closes it afterwards. */
export async function withTpm<T>(spec: string, fn: (tpm: TpmClient) => Promise<T>): Promise<T> {
  const tpm = await openTpm(spec);
  try {
    return await fn(tpm);
  } finally {
    await tpm.close().catch(() => undefined);
  }
}

/** An EK the agent works with: persistent (left alone) or created from the template (flushed by release). */
export interface LoadedEk {
  kind: EkKind;
  handle: number;
  public: TpmtPublic;
  /** TPMT_PUBLIC bytes as the TPM returned them */
  publicArea: Buffer;
  persistent: boolean;
  release(): Promise<void>;
}

/** The persistent handles of the standard EKs (TCG EK Credential Profile §2.2.1.5). */
const PERSISTENT: Partial<Record<EkKind, number>> = { rsa2048: EK_PERSISTENT.RSA, "ecc-p256": EK_PERSISTENT.ECC };

/** The EK kinds `--ek-alg` names. */
export const EK_ALG_KINDS = { rsa: "rsa2048", ecc: "ecc-p256" } as const satisfies Record<string, EkKind>;

/** True when the object at a persistent handle is an EK of `kind`: its template's type, size or curve, nameAlg, and a restricted decryption key. */
function isEkOfKind(pub: TpmtPublic, kind: EkKind): boolean {
  const t = EK_TEMPLATES[kind].template();
  const need = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent;
  if (pub.type !== t.type || pub.nameAlg !== t.nameAlg || (pub.objectAttributes & need) !== need) return false;
  if (pub.type === TPM_ALG.RSA && t.type === TPM_ALG.RSA) return pub.parameters.keyBits === t.parameters.keyBits;
  return pub.type === TPM_ALG.ECC && t.type === TPM_ALG.ECC && pub.parameters.curveID === t.parameters.curveID;
}

/** Which EK of a kind to use when a TPM has both: `auto` the persistent one if any, else the template's. */
export type EkChoice = "auto" | "template" | "persistent";

/**
 * The EK of `kind`. `auto`: the one at its persistent handle when that holds an EK of this kind
 * (it may have been made from a template in NV, and its certificate is for that key), else a
 * transient EK created from the profile's template. `template`: always the template's.
 * `persistent`: the one at the standard handle, else the first in the EK handle range
 * (ERR_NOT_FOUND when there is none).
 */
export async function loadEk(tpm: TpmClient, kind: EkKind, choice: EkChoice = "auto"): Promise<LoadedEk> {
  const handle = PERSISTENT[kind];
  if (choice !== "template" && handle !== undefined && (await getHandles(tpm, handle)).includes(handle)) {
    const rp = await tpm.run(ReadPublic, { objectHandle: handle });
    if (isEkOfKind(rp.public, kind)) return { kind, handle, public: rp.public, publicArea: rp.publicArea, persistent: true, release: async () => undefined };
  }
  if (choice === "persistent") {
    const p = (await persistentEks(tpm)).find((e) => e.kind === kind);
    if (!p) throw new TpmTrustError("ERR_NOT_FOUND", `no persistent ${kind} EK in 0x81010000–0x810100ff; use the template's (--ek template)`);
    return { ...p, persistent: true, release: async () => undefined };
  }
  const ek = await createEk(tpm, kind);
  return { kind, handle: ek.handle, public: ek.public, publicArea: ek.publicArea, persistent: false, release: () => tpm.run(FlushContext, { flushHandle: ek.handle }).catch(() => undefined) };
}

/** TCG TPM v2.0 Provisioning Guidance §7.8: persistent handles reserved for EKs. */
const EK_PERSISTENT_FIRST = 0x81010000;
const EK_PERSISTENT_LAST = 0x810100ff;

export interface PersistentEk {
  handle: number;
  kind: EkKind;
  public: TpmtPublic;
  publicArea: Buffer;
}

/**
 * EKs other stacks persisted in the EK handle range (e.g. the Azure IoT SDK's RSA EK at 0x81010001,
 * made from a template with an empty `unique`, so a different key than the profile's L-1 EK):
 * every object there that is an EK of one of the profile's kinds.
 */
export async function persistentEks(tpm: TpmClient): Promise<PersistentEk[]> {
  const out: PersistentEk[] = [];
  for (const handle of await getHandles(tpm, EK_PERSISTENT_FIRST)) {
    if (handle > EK_PERSISTENT_LAST) break;
    const rp = await tpm.run(ReadPublic, { objectHandle: handle });
    const kind = (Object.keys(EK_TEMPLATES) as EkKind[]).find((k) => isEkOfKind(rp.public, k));
    if (kind) out.push({ handle, kind, public: rp.public, publicArea: rp.publicArea });
  }
  return out;
}

/** Runs `fn` with the EK of `kind` loaded, releasing it afterwards. */
export async function withEk<T>(tpm: TpmClient, kind: EkKind, fn: (ek: LoadedEk) => Promise<T>, choice: EkChoice = "auto"): Promise<T> {
  const ek = await loadEk(tpm, kind, choice);
  try {
    return await fn(ek);
  } finally {
    await ek.release();
  }
}

/** A TPM that cannot make an EK of this kind (no such curve or key size) answers with a parameter/value error. */
export function unsupportedByTpm(e: unknown): boolean {
  return e instanceof TpmRcError && /^TPM_RC_(CURVE|KEY_SIZE|ASYMMETRIC|VALUE|SCHEME|HASH|SYMMETRIC|KDF|TYPE)$/.test(e.rc.name);
}

/** TPM2B_PUBLIC = u16 size ‖ TPMT_PUBLIC (Part 2 §12.2.5), from the bytes the TPM returned. */
export function tpm2bPublic(publicArea: Buffer): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16BE(publicArea.length);
  return Buffer.concat([size, publicArea]);
}
