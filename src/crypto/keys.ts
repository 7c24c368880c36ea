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

/** DER TLV with a minimal length. */
function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const content = Buffer.concat(parts);
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}

/** DER INTEGER of a big-endian unsigned magnitude. */
function derUnsigned(v: Buffer): Buffer {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const m = v.subarray(i);
  return tlv(0x02, m[0] & 0x80 ? Buffer.from([0]) : Buffer.alloc(0), m);
}

/** DER RSAPublicKey { n, e } (RFC 8017 §A.1.1) of big-endian unsigned magnitudes. */
function rsaPublicKeyDer(n: Buffer, e: Buffer): Buffer {
  return tlv(0x30, derUnsigned(n), derUnsigned(e));
}

const RSA_ALGORITHM = Buffer.from("300d06092a864886f70d0101010500", "hex"); // rsaEncryption, NULL
const EC_ALGORITHM: Record<string, Buffer> = {
  // id-ecPublicKey with the named curve (RFC 5480 §2.1.1)
  "P-256": Buffer.from("301306072a8648ce3d020106082a8648ce3d030107", "hex"),
  "P-384": Buffer.from("301006072a8648ce3d020106052b81040022", "hex"),
  "P-521": Buffer.from("301006072a8648ce3d020106052b81040023", "hex"),
};

/** The one DER SubjectPublicKeyInfo of a JWK public key (RFC 3279, RFC 5480: named curve, uncompressed point). */
function spkiOfJwk(jwk: JsonWebKey): Buffer {
  const b = (v?: string) => Buffer.from(v ?? "", "base64url");
  const [algorithm, key] =
    jwk.kty === "RSA" ? [RSA_ALGORITHM, rsaPublicKeyDer(b(jwk.n), b(jwk.e))] : [EC_ALGORITHM[jwk.crv!], Buffer.concat([Buffer.from([4]), b(jwk.x), b(jwk.y)])];
  return tlv(0x30, algorithm, tlv(0x03, Buffer.from([0]), key));
}

// Public areas are treated as immutable values: a KeyObject is built once per object, and once
// per distinct key for publics parsed again (e.g. an AK loaded from the store per request). Keys
// are cached by their DER SubjectPublicKeyInfo, so a certificate for the same key finds it too.
const byObject = new WeakMap<TpmtPublic, { key: KeyObject; spki: Buffer }>();
const bySpki = new Map<string, KeyObject>();
const KEY_CACHE = 512;

function fromTpmt(pub: TpmtPublic): { key: KeyObject; spki: Buffer } {
  const cached = byObject.get(pub);
  if (cached) return cached;
  const jwk = jwkOf(pub);
  const spki = spkiOfJwk(jwk);
  const material = spki.toString("latin1");
  let key = bySpki.get(material);
  if (!key) {
    try {
      key = createPublicKey({ key: jwk, format: "jwk" });
    } catch (e) {
      throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `not a valid ${jwk.kty} public key: ${(e as Error).message}`, { field: "unique" });
    }
    if (bySpki.size >= KEY_CACHE) bySpki.delete(bySpki.keys().next().value!);
    bySpki.set(material, key);
  }
  const entry = { key, spki };
  byObject.set(pub, entry);
  return entry;
}

/** The KeyObject of an RSA or ECC public area; malformed or off-curve keys are ERR_PARSE_BAD_VALUE. */
export function publicKeyFromTpmt(pub: TpmtPublic): KeyObject {
  return fromTpmt(pub).key;
}

/** DER SubjectPublicKeyInfo of an RSA or ECC public area. */
export function spkiFromTpmt(pub: TpmtPublic): Buffer {
  return Buffer.from(fromTpmt(pub).spki);
}

/**
 * The KeyObject already built from a TPM public area whose DER SubjectPublicKeyInfo is exactly `spki`
 * (a certificate for that key, read again without importing it a second time), if still cached.
 */
export function cachedPublicKey(spki: Uint8Array): KeyObject | undefined {
  return bySpki.get(Buffer.from(spki.buffer, spki.byteOffset, spki.length).toString("latin1"));
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
