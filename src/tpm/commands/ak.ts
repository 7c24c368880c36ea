/** Attestation keys: restricted signing keys created under the EK. */
import { TPM_ALG, TPM_ECC, TPMA_OBJECT } from "../constants.js";
import type { TpmtPublic } from "../types.js";
import type { TpmClient } from "./client.js";
import { ekAuth } from "./ek.js";
import type { AuthSession } from "./session.js";
import { Create } from "./create.js";
import { FlushContext } from "./flush-context.js";
import { Load } from "./load.js";
import { ReadPublic } from "./read-public.js";

// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign (0x00050072)
const AK_ATTRS = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;

export interface AkOptions {
  type?: "rsa" | "ecc";
  /** nameAlg and signing hash (default SHA-256) */
  hashAlg?: number;
  /** RSA: RSASSA (default) or RSAPSS */
  rsaScheme?: "rsassa" | "rsapss";
  /** RSA key size (default 2048) */
  keyBits?: number;
  /** ECC curve (default NIST P-256) */
  curveID?: number;
}

/** A restricted signing key template (Part 2 §12.2.4) with an empty unique. */
export function akTemplate(opts: AkOptions = {}): TpmtPublic {
  const hashAlg = opts.hashAlg ?? TPM_ALG.SHA256;
  const base = { nameAlg: hashAlg, objectAttributes: AK_ATTRS, authPolicy: Buffer.alloc(0) };
  if ((opts.type ?? "rsa") === "rsa") {
    const scheme = opts.rsaScheme === "rsapss" ? TPM_ALG.RSAPSS : TPM_ALG.RSASSA;
    return {
      type: TPM_ALG.RSA,
      ...base,
      parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme, hashAlg }, keyBits: opts.keyBits ?? 2048, exponent: 0 },
      unique: Buffer.alloc(0),
    };
  }
  return {
    type: TPM_ALG.ECC,
    ...base,
    parameters: {
      symmetric: { algorithm: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.ECDSA, hashAlg },
      curveID: opts.curveID ?? TPM_ECC.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL },
    },
    unique: { x: Buffer.alloc(0), y: Buffer.alloc(0) },
  };
}

export interface CreatedKey {
  handle: number;
  public: TpmtPublic;
  publicArea: Buffer;
  /** TPM2B_PRIVATE contents, for loading the key again under the same parent */
  private: Buffer;
  name: Buffer;
  qualifiedName: Buffer;
}

/**
 * Creates and loads an AK under a loaded EK, authorizing both the create and the load with the
 * EK's policy (PolicySecret(TPM_RH_ENDORSEMENT)) or its authValue (see ekAuth).
 */
export async function createAk(
  client: TpmClient,
  ek: { handle: number; public: TpmtPublic },
  opts: AkOptions & { endorsementAuth?: AuthSession } = {},
): Promise<CreatedKey> {
  const created = await client.run(Create, { parentHandle: ek.handle, inPublic: akTemplate(opts), auth: await ekAuth(client, ek.public, opts) });
  const { handle } = await client.run(Load, { parentHandle: ek.handle, inPrivate: created.private, inPublic: created.public, auth: await ekAuth(client, ek.public, opts) });
  try {
    const { name, qualifiedName } = await client.run(ReadPublic, { objectHandle: handle });
    return { handle, public: created.public, publicArea: created.publicArea, private: created.private, name, qualifiedName };
  } catch (e) {
    await client.run(FlushContext, { flushHandle: handle }).catch(() => undefined);
    throw e;
  }
}
