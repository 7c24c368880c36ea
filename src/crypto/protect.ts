/**
 * Protection of data to a TPM storage-class key (an EK or a storage parent), shared by
 * MakeCredential and duplication: the seed handed to the key, and the outer wrapper derived from it.
 */
import { createCipheriv, createECDH, createHmac, publicEncrypt, randomBytes, constants } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { ECC_CURVES, TPMA_OBJECT, TPM_ALG, algName } from "../tpm/constants.js";
import { marshal } from "../tpm/marshal.js";
import { encodeTpmsEccPoint } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { hashAlgorithm, kdfa, kdfe } from "./kdf.js";
import { publicKeyFromTpmt } from "./keys.js";

/** Source of random bytes; injectable so tests can be deterministic. */
export type Random = (bytes: number) => Buffer;

/** Labels of the secret-sharing uses: credentials (Part 1 §24), duplication (§23), salted sessions. */
export type SeedLabel = "IDENTITY" | "DUPLICATE" | "SECRET";

export interface SharedSeed {
  seed: Buffer;
  /** contents of the TPM2B_ENCRYPTED_SECRET: RSA-OAEP ciphertext, or a marshalled TPMS_ECC_POINT */
  encryptedSecret: Buffer;
}

const ZERO_IV = Buffer.alloc(16);

/** `b` with its u16 size in front (a TPM2B). */
export const tpm2b = (b: Uint8Array): Buffer => marshal((w) => w.tpm2b(b));

/** AES-CFB (full-block CFB128) with a zero IV, as every TPM wrap uses (Part 1 §11.4.6, symmetric encryption). */
export function aesCfbEncrypt(key: Uint8Array, data: Uint8Array): Buffer {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `an AES key has 16, 24 or 32 bytes, not ${key.length}`, { keyBytes: key.length });
  }
  const c = createCipheriv(`aes-${key.length * 8}-cfb`, key, ZERO_IV);
  return Buffer.concat([c.update(data), c.final()]);
}

/** The AES key size of a protector's symmetric definition; storage keys use AES-CFB. */
export function protectorKeyBits(protector: TpmtPublic): number {
  const sym = protector.type === TPM_ALG.RSA || protector.type === TPM_ALG.ECC ? protector.parameters.symmetric : undefined;
  if (!sym || sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB || ![128, 192, 256].includes(sym.keyBits ?? 0)) {
    throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", "the protecting key must be an RSA or ECC key with an AES-CFB symmetric definition", {
      type: protector.type,
      symmetric: sym ? algName(sym.algorithm) : undefined,
    });
  }
  if (!(protector.objectAttributes & TPMA_OBJECT.decrypt)) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "the protecting key is not a decryption key", { objectAttributes: protector.objectAttributes });
  }
  return sym.keyBits!;
}

function pad(v: Buffer, size: number): Buffer {
  return v.length >= size ? v : Buffer.concat([Buffer.alloc(size - v.length), v]);
}

/**
 * A fresh seed and its encryption to `protector` (Part 1 Annex B and C, secret sharing):
 * RSA: with H = the key's OAEP scheme hash, else nameAlg: seed = random(digest size of H),
 * RSA-OAEP(H, MGF1(H), label ‖ 00). ECC: one-pass ECDH with an ephemeral key on the protector's curve,
 * seed = KDFe(nameAlg, Z.x, label, ephemeral.x, protector.x, digest bits), secret = TPMS_ECC_POINT(ephemeral).
 */
export function shareSeed(protector: TpmtPublic, label: SeedLabel, random: Random = randomBytes): SharedSeed {
  const { node, size } = hashAlgorithm(protector.nameAlg);
  if (protector.type === TPM_ALG.RSA) {
    const { scheme } = protector.parameters;
    if (scheme.scheme !== TPM_ALG.NULL && scheme.scheme !== TPM_ALG.OAEP) {
      throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `seed encryption with the ${algName(scheme.scheme)} scheme is not supported`, { scheme: scheme.scheme });
    }
    // the seed is one digest of the OAEP hash: the key's OAEP scheme hash if it has one, else nameAlg
    const oaep = scheme.scheme === TPM_ALG.OAEP ? hashAlgorithm(scheme.hashAlg!) : { node, size };
    const seed = random(oaep.size);
    const key = publicKeyFromTpmt(protector);
    try {
      const encryptedSecret = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: oaep.node, oaepLabel: Buffer.from(`${label}\0`, "latin1") }, seed);
      return { seed, encryptedSecret };
    } catch (e) {
      // e.g. OAEP with SHA-512 needs more than a 1024-bit modulus
      throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `RSA-OAEP(${oaep.node}) to this key is impossible: ${(e as Error).message}`, { keyBits: protector.parameters.keyBits });
    }
  }
  if (protector.type === TPM_ALG.ECC) {
    const curve = ECC_CURVES[protector.parameters.curveID];
    publicKeyFromTpmt(protector); // rejects unsupported curves and points off the curve
    const ecdh = createECDH(curve.node);
    if (random === randomBytes) ecdh.generateKeys();
    else {
      const d = random(curve.size);
      if (curve.size === 66) d[0] &= 0x01; // P-521: 521-bit scalars
      try {
        ecdh.setPrivateKey(d);
      } catch {
        throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "the injected ephemeral private key is not a valid scalar");
      }
    }
    const eph = ecdh.getPublicKey();
    const q = Buffer.concat([Buffer.of(4), pad(protector.unique.x, curve.size), pad(protector.unique.y, curve.size)]);
    const zx = ecdh.computeSecret(q); // q was validated as a point on the curve above
    const ephX = eph.subarray(1, 1 + curve.size);
    const seed = kdfe(protector.nameAlg, zx, label, ephX, protector.unique.x, size * 8);
    return { seed, encryptedSecret: encodeTpmsEccPoint({ x: ephX, y: eph.subarray(1 + curve.size) }) };
  }
  throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `a ${algName(protector.type)} key cannot protect a seed`, { type: protector.type });
}

/**
 * The outer wrapper (Part 1 §23.3.2; the same construction protects a credential, §24):
 * symKey = KDFa(nameAlg, seed, "STORAGE", name, "", keyBits), encrypted = AES-CFB(symKey, plaintext),
 * hmacKey = KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits), integrity = HMAC(hmacKey, encrypted ‖ name).
 * Returns TPM2B(integrity) ‖ encrypted, the contents of a TPM2B_ID_OBJECT or TPM2B_PRIVATE.
 */
export function outerWrap(protector: TpmtPublic, seed: Buffer, name: Uint8Array, plaintext: Uint8Array): Buffer {
  const { node, size } = hashAlgorithm(protector.nameAlg);
  const keyBits = protectorKeyBits(protector);
  const symKey = kdfa(protector.nameAlg, seed, "STORAGE", name, undefined, keyBits);
  const encrypted = aesCfbEncrypt(symKey, plaintext);
  const hmacKey = kdfa(protector.nameAlg, seed, "INTEGRITY", undefined, undefined, size * 8);
  const integrity = createHmac(node, hmacKey).update(encrypted).update(name).digest();
  return Buffer.concat([tpm2b(integrity), encrypted]);
}
