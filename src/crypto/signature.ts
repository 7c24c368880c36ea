/**
 * Verification of TPMT_SIGNATURE (Part 2 §11.3.4) over a message: RSASSA-PKCS1-v1_5, RSASSA-PSS,
 * ECDSA and HMAC with SHA-1/256/384/512, against a TPM public area, a KeyObject or an SPKI.
 */
import { constants, createHmac, KeyObject, timingSafeEqual, verify } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, TPM_ALG, algName } from "../tpm/constants.js";
import type { TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { isTpmtPublic, publicKeyFromTpmt, toPublicKey, type PublicKeyInput } from "./keys.js";

/** Hashes a signature may use. */
const SIG_HASHES: Record<number, string> = {
  [TPM_ALG.SHA1]: "sha1",
  [TPM_ALG.SHA256]: "sha256",
  [TPM_ALG.SHA384]: "sha384",
  [TPM_ALG.SHA512]: "sha512",
};

/** A verification key: any public key input, or a secret KeyObject for HMAC signatures. */
export type VerificationKey = PublicKeyInput;

interface KeyInfo {
  kind: "rsa" | "ec";
  /** ECC: coordinate size in bytes; RSA: modulus size in bytes */
  size: number;
}
const keyInfos = new WeakMap<KeyObject, KeyInfo>();

function keyInfo(key: KeyObject): KeyInfo {
  let info = keyInfos.get(key);
  if (info) return info;
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "rsa" || key.asymmetricKeyType === "rsa-pss") info = { kind: "rsa", size: Math.ceil((d.modulusLength ?? 0) / 8) };
  else if (key.asymmetricKeyType === "ec") info = { kind: "ec", size: { "prime256v1": 32, "secp384r1": 48, "secp521r1": 66 }[d.namedCurve ?? ""] ?? 0 };
  if (!info || info.size === 0) {
    throw new TpmTrustError("ERR_SIGNATURE_SCHEME", `a ${key.asymmetricKeyType} ${d.namedCurve ?? ""} key cannot verify TPM signatures`, { keyType: key.asymmetricKeyType });
  }
  keyInfos.set(key, info);
  return info;
}

function schemeError(message: string, sig: TpmtSignature): never {
  throw new TpmTrustError("ERR_SIGNATURE_SCHEME", message, { sigAlg: algName(sig.sigAlg), hash: "hash" in sig ? algName(sig.hash) : undefined });
}
function invalid(sig: TpmtSignature): never {
  throw new TpmTrustError("ERR_SIGNATURE_INVALID", `${algName(sig.sigAlg)} signature does not verify`, { sigAlg: algName(sig.sigAlg) });
}

/** A key whose public area fixes a scheme signs only with that scheme and hash. */
function checkKeyScheme(pub: TpmtPublic, sig: TpmtSignature & { hash: number }): void {
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC) schemeError(`a ${algName(pub.type)} public area cannot verify a ${algName(sig.sigAlg)} signature`, sig);
  const { scheme } = pub.parameters;
  if (scheme.scheme !== TPM_ALG.NULL && (scheme.scheme !== sig.sigAlg || scheme.hashAlg !== sig.hash)) {
    schemeError(`the key's scheme is ${algName(scheme.scheme)}-${algName(scheme.hashAlg ?? 0)}, the signature is ${algName(sig.sigAlg)}-${algName(sig.hash)}`, sig);
  }
}

function padTo(v: Buffer, size: number, sig: TpmtSignature): Buffer {
  if (v.length === size) return v;
  if (v.length === 0 || v.length > size) invalid(sig);
  return Buffer.concat([Buffer.alloc(size - v.length), v]);
}

/**
 * Verifies `sig` over `message` (the signed bytes, e.g. a marshalled TPMS_ATTEST). Throws
 * ERR_SIGNATURE_SCHEME when the signature's scheme or hash does not fit the key, ERR_SIGNATURE_INVALID
 * when it does not verify. RSASSA-PSS accepts any salt length (a TPM uses the digest size, or the
 * maximum when the key is too small): OpenSSL's RSA_PSS_SALTLEN_AUTO recovers it from the signature.
 */
export function verifySignature(sig: TpmtSignature, message: Uint8Array, key: VerificationKey): void {
  if (sig.sigAlg === TPM_ALG.NULL) schemeError("the signature is empty (TPM_ALG_NULL)", sig);
  const hash = SIG_HASHES[sig.hash];
  if (!hash) schemeError(`hash ${algName(sig.hash)} is not supported for signatures`, sig);

  if (sig.sigAlg === TPM_ALG.HMAC) {
    if (!(key instanceof KeyObject) || key.type !== "secret") schemeError("an HMAC signature needs the secret key", sig);
    const mac = createHmac(hash, key).update(message).digest();
    if (mac.length !== sig.digest.length || !timingSafeEqual(mac, sig.digest)) invalid(sig);
    return;
  }
  if (key instanceof KeyObject && key.type === "secret") schemeError(`a secret key cannot verify a ${algName(sig.sigAlg)} signature`, sig);
  let k: KeyObject;
  if (isTpmtPublic(key)) {
    checkKeyScheme(key, sig);
    k = publicKeyFromTpmt(key);
  } else k = toPublicKey(key);
  const info = keyInfo(k);

  let ok: boolean;
  try {
    switch (sig.sigAlg) {
      case TPM_ALG.RSASSA:
        if (info.kind !== "rsa") schemeError("an RSASSA signature needs an RSA key", sig);
        ok = verify(hash, message, k, sig.sig);
        break;
      case TPM_ALG.RSAPSS:
        if (info.kind !== "rsa") schemeError("an RSAPSS signature needs an RSA key", sig);
        ok = verify(hash, message, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig.sig);
        break;
      case TPM_ALG.ECDSA: {
        if (info.kind !== "ec") schemeError("an ECDSA signature needs an ECC key", sig);
        const rs = Buffer.concat([padTo(sig.r, info.size, sig), padTo(sig.s, info.size, sig)]);
        ok = verify(hash, message, { key: k, dsaEncoding: "ieee-p1363" }, rs);
        break;
      }
      default:
        schemeError(`${algName(sig.sigAlg)} signatures are not supported`, sig);
    }
  } catch (e) {
    if (e instanceof TpmTrustError) throw e;
    invalid(sig); // OpenSSL rejects some malformed signatures by throwing
  }
  if (!ok) invalid(sig);
}

/** The `--signature-scheme` names: rsassa|rsapss|ecdsa|hmac - sha1|sha256|sha384|sha512. */
export const RAW_SIGNATURE_SCHEMES = (["rsassa", "rsapss", "ecdsa", "hmac"] as const).flatMap((s) => Object.values(SIG_HASHES).map((h) => `${s}-${h}`));

const SCHEME_ALGS = { rsassa: TPM_ALG.RSASSA, rsapss: TPM_ALG.RSAPSS, ecdsa: TPM_ALG.ECDSA, hmac: TPM_ALG.HMAC } as const;

/**
 * Strict DER Ecdsa-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }, RFC 3279 §2.2.3) → [r, s] without
 * sign octets, or undefined when `b` is not exactly that (so r‖s input is never mistaken for DER).
 */
function derEcdsa(b: Buffer): [Buffer, Buffer] | undefined {
  const len = (at: number): [number, number] | undefined => {
    if (at >= b.length) return undefined;
    if (b[at] < 0x80) return [b[at], at + 1];
    if (b[at] === 0x81 && at + 1 < b.length && b[at + 1] >= 0x80) return [b[at + 1], at + 2];
    return undefined;
  };
  const int = (at: number): [Buffer, number] | undefined => {
    if (b[at] !== 0x02) return undefined;
    const l = len(at + 1);
    if (!l || l[0] === 0 || l[1] + l[0] > b.length) return undefined;
    const v = b.subarray(l[1], l[1] + l[0]);
    if (v[0] & 0x80) return undefined; // negative
    if (v.length > 1 && v[0] === 0 && !(v[1] & 0x80)) return undefined; // not minimal
    return [v[0] === 0 && v.length > 1 ? v.subarray(1) : v, l[1] + l[0]];
  };
  if (b[0] !== 0x30) return undefined;
  const seq = len(1);
  if (!seq || seq[1] + seq[0] !== b.length) return undefined;
  const r = int(seq[1]);
  const s = r && int(r[1]);
  return r && s && s[1] === b.length ? [r[0], s[0]] : undefined;
}

/**
 * A TPMT_SIGNATURE from a raw signature and its scheme name (see RAW_SIGNATURE_SCHEMES): RSA
 * signatures as bytes, ECDSA as DER or r‖s (each half the curve size of `key`), HMAC as the digest.
 */
export function signatureFromRaw(scheme: string, raw: Uint8Array, key?: VerificationKey): TpmtSignature {
  const [kind, hashName] = scheme.toLowerCase().split("-", 2) as [keyof typeof SCHEME_ALGS, string];
  const hash = Number(Object.keys(SIG_HASHES).find((h) => SIG_HASHES[Number(h)] === hashName));
  const sigAlg = SCHEME_ALGS[kind];
  if (!sigAlg || !hash || !RAW_SIGNATURE_SCHEMES.includes(scheme.toLowerCase())) {
    throw new TpmTrustError("ERR_USAGE", `unknown signature scheme "${scheme}" (one of ${RAW_SIGNATURE_SCHEMES.join(", ")})`, { scheme });
  }
  const bytes = Buffer.from(raw);
  if (bytes.length === 0) throw new TpmTrustError("ERR_PARSE_TRUNCATED", "the signature is empty", { offset: 0 });
  if (sigAlg === TPM_ALG.HMAC) {
    if (bytes.length !== HASH_ALGS[hash].size) {
      throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `an HMAC-${hashName} signature has ${HASH_ALGS[hash].size} bytes, not ${bytes.length}`);
    }
    return { sigAlg, hash, digest: bytes };
  }
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) return { sigAlg, hash, sig: bytes };
  const der = derEcdsa(bytes);
  if (der) return { sigAlg, hash, r: der[0], s: der[1] };
  const size = key && !(key instanceof KeyObject && key.type === "secret") ? keyInfo(toPublicKey(key)).size : bytes.length / 2;
  if (bytes.length !== 2 * size) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `an ECDSA signature must be DER or r‖s of ${key ? 2 * size : "an even number of"} bytes, not ${bytes.length}`);
  }
  return { sigAlg, hash, r: bytes.subarray(0, size), s: bytes.subarray(size) };
}
