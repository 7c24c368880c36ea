import { createPublicKey, KeyObject, type JsonWebKey } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { ECC_CURVES, TPM_ALG, algName } from "../tpm/constants.js";
import type { TpmtPublic } from "../tpm/types.js";

/** A public key as tpmtrust receives one: a TPM public area, a KeyObject, or an SPKI (DER bytes or PEM text). */
export type PublicKeyInput = TpmtPublic | KeyObject | Uint8Array | string;

/** True for a TPM public area (as opposed to a KeyObject or SPKI). */
export function isTpmtPublic(key: PublicKeyInput): key is TpmtPublic {
  return typeof key === "object" && !(key instanceof KeyObject) && !(key instanceof Uint8Array) && "objectAttributes" in key;
}

/** Big-endian bytes of `n` without leading zeros. */
function uintBytes(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  let i = 0;
  while (i < 3 && b[i] === 0) i++;
  return b.subarray(i);
}

/** Left-pads a coordinate to the curve size (a TPM may drop leading zero octets). */
function coordinate(v: Buffer, size: number, what: string): Buffer {
  if (v.length > size) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `ECC ${what} has ${v.length} bytes, the curve ${size}`, { field: what });
  return v.length === size ? v : Buffer.concat([Buffer.alloc(size - v.length), v]);
}

/** JWK of a TPM public area's key (Part 2 §12.2.3.5 TPMS_RSA_PARMS, §11.2.5.2 TPMS_ECC_POINT). */
function jwkOf(pub: TpmtPublic): JsonWebKey {
  switch (pub.type) {
    case TPM_ALG.RSA: {
      const { keyBits, exponent } = pub.parameters;
      if (keyBits % 8 !== 0 || pub.unique.length !== keyBits / 8) {
        throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `RSA modulus has ${pub.unique.length} bytes, keyBits says ${keyBits}`, { field: "rsa.unique" });
      }
      // a keyBits-bit modulus has its top bit set and is odd; exponent 0 means 2^16 + 1 (§12.2.3.5)
      const e = exponent === 0 ? 65537 : exponent;
      if ((pub.unique[0] & 0x80) === 0 || (pub.unique[pub.unique.length - 1] & 1) === 0 || e < 3 || (e & 1) === 0) {
        throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "not an RSA public key (modulus or exponent impossible)", { field: "rsa.unique" });
      }
      return { kty: "RSA", n: pub.unique.toString("base64url"), e: uintBytes(e).toString("base64url") };
    }
    case TPM_ALG.ECC: {
      const curve = ECC_CURVES[pub.parameters.curveID];
      if (!curve) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `ECC curve 0x${pub.parameters.curveID.toString(16)} is not supported`, { curveID: pub.parameters.curveID });
      return {
        kty: "EC",
        crv: curve.jwk,
        x: coordinate(pub.unique.x, curve.size, "x").toString("base64url"),
        y: coordinate(pub.unique.y, curve.size, "y").toString("base64url"),
      };
    }
    default:
      throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `a ${algName(pub.type)} object has no public key`, { type: pub.type });
  }
}

// Public areas are treated as immutable values: a KeyObject is built once per object, and once
// per distinct key for publics parsed again (e.g. an AK loaded from the store per request).
const byObject = new WeakMap<TpmtPublic, KeyObject>();
const byMaterial = new Map<string, KeyObject>();
const MATERIAL_CACHE = 512;

/** The KeyObject of an RSA or ECC public area; malformed or off-curve keys are ERR_PARSE_BAD_VALUE. */
export function publicKeyFromTpmt(pub: TpmtPublic): KeyObject {
  const cached = byObject.get(pub);
  if (cached) return cached;
  const jwk = jwkOf(pub);
  const material = jwk.kty === "RSA" ? `RSA.${jwk.e}.${jwk.n}` : `EC.${jwk.crv}.${jwk.x}.${jwk.y}`;
  let key = byMaterial.get(material);
  if (!key) {
    try {
      key = createPublicKey({ key: jwk, format: "jwk" });
    } catch (e) {
      throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `not a valid ${jwk.kty} public key: ${(e as Error).message}`, { field: "unique" });
    }
    if (byMaterial.size >= MATERIAL_CACHE) byMaterial.delete(byMaterial.keys().next().value!);
    byMaterial.set(material, key);
  }
  byObject.set(pub, key);
  return key;
}

/** DER SubjectPublicKeyInfo of an RSA or ECC public area. */
export function spkiFromTpmt(pub: TpmtPublic): Buffer {
  return publicKeyFromTpmt(pub).export({ type: "spki", format: "der" });
}

/** Any PublicKeyInput as a public KeyObject (a private KeyObject yields its public half). */
export function toPublicKey(key: PublicKeyInput): KeyObject {
  if (key instanceof KeyObject) {
    if (key.type === "public") return key;
    if (key.type === "private") return createPublicKey(key);
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "a secret key is not a public key");
  }
  if (isTpmtPublic(key)) return publicKeyFromTpmt(key);
  try {
    return typeof key === "string" ? createPublicKey(key) : createPublicKey({ key: Buffer.from(key.buffer, key.byteOffset, key.length), format: "der", type: "spki" });
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `not a SubjectPublicKeyInfo: ${(e as Error).message}`);
  }
}

/** True when both inputs hold the same public key (same algorithm, parameters and key material). */
export function samePublicKey(a: PublicKeyInput, b: PublicKeyInput): boolean {
  return toPublicKey(a).equals(toPublicKey(b));
}
