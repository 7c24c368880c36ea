import { createPublicKey, hash, publicDecrypt, constants, type KeyObject, X509Certificate } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { ContentInfo, SignedData, id_signedData } from "@peculiar/asn1-cms";
import { Certificate, SubjectPublicKeyInfo } from "@peculiar/asn1-x509";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import type { ImaDigest } from "./types.js";

/** A key trusted to sign IMA measurements: its public key and the key ids a signature may name it by. */
export interface ImaKey {
  key: KeyObject;
  /** 4-byte key ids (hex): SHA-1 of the public key's bits, last 4 bytes (evmctl), and the certificate's SKID tail. */
  keyIds: string[];
  /** Full subject key identifier and issuer+serial of a certificate, for PKCS#7 signer ids. */
  skid?: string;
  issuerSerial?: string;
  /** SHA-256 of the key's DER as measured (certificate or SubjectPublicKeyInfo). */
  sha256: string;
}

/** Linux hash_algo ids (include/uapi/linux/hash_info.h) used in signature headers. */
const HASH_ALGO: Record<number, string> = { 1: "md5", 2: "sha1", 4: "sha256", 5: "sha384", 6: "sha512", 7: "sha224" };

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Record<string, string> = {
  sha1: "3021300906052b0e03021a05000414",
  sha224: "302d300d06096086480165030402040500041c",
  sha256: "3031300d060960864801650304020105000420",
  sha384: "3041300d060960864801650304020205000430",
  sha512: "3051300d060960864801650304020305000440",
};

const CURVES: Record<string, typeof p256> = { "P-256": p256, "P-384": p384 as unknown as typeof p256, "P-521": p521 as unknown as typeof p256, secp256k1: secp256k1 as unknown as typeof p256 };

/** Verifies a signature made over a digest (not a message): RSA PKCS#1 v1.5 or ECDSA (DER). */
export function verifyDigestSignature(key: KeyObject, alg: string, digest: Buffer, sig: Buffer): boolean {
  if (key.asymmetricKeyType === "rsa") {
    const prefix = DIGEST_INFO[alg];
    if (!prefix) return false;
    try {
      return publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, sig).equals(Buffer.concat([Buffer.from(prefix, "hex"), digest]));
    } catch {
      return false;
    }
  }
  if (key.asymmetricKeyType === "ec") {
    const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ""] ?? CURVES[{ prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" }[key.asymmetricKeyDetails?.namedCurve ?? ""] ?? ""];
    if (!curve) return false;
    try {
      const point = key.export({ format: "jwk" });
      const pub = Buffer.concat([Buffer.from([4]), Buffer.from(point.x!, "base64url"), Buffer.from(point.y!, "base64url")]);
      return curve.verify(curve.Signature.fromDER(sig).toCompactRawBytes(), digest, pub, { prehash: false, lowS: false });
    } catch {
      return false;
    }
  }
  return false;
}

/** Loads a trusted IMA key from an X.509 certificate or a public key (PEM or DER). */
export function loadImaKey(input: Buffer | string): ImaKey {
  const bytes = typeof input === "string" ? Buffer.from(input) : input;
  let key: KeyObject;
  let skid: string | undefined;
  let issuerSerial: string | undefined;
  let der: Buffer;
  try {
    const cert = new X509Certificate(bytes);
    key = cert.publicKey;
    der = cert.raw;
    const c = AsnConvert.parse(der, Certificate);
    const ext = c.tbsCertificate.extensions?.find((e) => e.extnID === "2.5.29.14");
    if (ext) skid = Buffer.from(ext.extnValue.buffer).subarray(2).toString("hex");
    issuerSerial = `${Buffer.from(AsnConvert.serialize(c.tbsCertificate.issuer)).toString("hex")}/${Buffer.from(c.tbsCertificate.serialNumber).toString("hex")}`;
  } catch {
    const pem = bytes.toString("latin1").includes("-----BEGIN");
    key = createPublicKey(pem ? { key: bytes, format: "pem" } : { key: bytes, format: "der", type: "spki" });
    der = key.export({ format: "der", type: "spki" });
  }
  const spki = AsnConvert.parse(key.export({ format: "der", type: "spki" }), SubjectPublicKeyInfo);
  const keyIds = [hash("sha1", Buffer.from(spki.subjectPublicKey), "buffer").subarray(16).toString("hex")];
  if (skid && skid.length >= 8) keyIds.push(skid.slice(-8));
  return { key, keyIds, ...(skid ? { skid } : {}), ...(issuerSerial ? { issuerSerial } : {}), sha256: hash("sha256", der, "hex") };
}

export interface SigCheck {
  ok: boolean;
  reason?: string;
  keyId?: string;
}

/**
 * An IMA file signature (the `sig` field: signature_v2_hdr, security/integrity/integrity.h):
 * u8 type (3: digital signature) | u8 version (2) | u8 hash_algo | be32 keyid | be16 size | signature,
 * made over the file digest with the key whose id it names.
 */
export function verifyImaSignature(sig: Buffer, digest: ImaDigest, keys: readonly ImaKey[]): SigCheck {
  if (sig.length < 9) return { ok: false, reason: "signature header truncated" };
  const [type, version, algo] = [sig[0], sig[1], sig[2]];
  const keyId = sig.toString("hex", 3, 7);
  const size = sig.readUInt16BE(7);
  if (type !== 3) return { ok: false, reason: `signature type ${type} is not an IMA digital signature (3)`, keyId };
  if (version !== 2) return { ok: false, reason: `signature version ${version} is not supported (2)`, keyId };
  if (9 + size !== sig.length) return { ok: false, reason: `signature header says ${size} bytes, ${sig.length - 9} follow`, keyId };
  const alg = HASH_ALGO[algo];
  if (alg !== digest.alg) return { ok: false, reason: `signature hash algorithm ${alg ?? algo} is not the file digest's ${digest.alg}`, keyId };
  const candidates = keys.filter((k) => k.keyIds.includes(keyId));
  if (!candidates.length) return { ok: false, reason: `no trusted IMA key has key id ${keyId}`, keyId };
  const body = sig.subarray(9);
  if (candidates.some((k) => verifyDigestSignature(k.key, alg, digest.digest, body))) return { ok: true, keyId };
  return { ok: false, reason: `signature does not verify with the trusted key ${keyId}`, keyId };
}

const OID_HASH: Record<string, string> = {
  "1.3.14.3.2.26": "sha1",
  "2.16.840.1.101.3.4.2.4": "sha224",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

/**
 * An appended signature (`modsig`: PKCS#7 SignedData, RFC 2315/5652) over the file without it, whose
 * digest is `d-modsig`, made without signed attributes (as sign-file and the kernel's verifier do) so the
 * signature is over that digest.
 */
export function verifyModsig(modsig: Buffer, digest: ImaDigest, keys: readonly ImaKey[]): SigCheck {
  let sd: SignedData;
  try {
    const ci = AsnConvert.parse(modsig, ContentInfo);
    if (ci.contentType !== id_signedData) return { ok: false, reason: "appended signature is not PKCS#7 SignedData" };
    sd = AsnConvert.parse(ci.content, SignedData);
  } catch (e) {
    return { ok: false, reason: `appended signature does not parse: ${(e as Error).message}` };
  }
  const si = sd.signerInfos[0];
  if (!si || sd.signerInfos.length !== 1) return { ok: false, reason: "appended signature must have exactly one signer" };
  const alg = OID_HASH[si.digestAlgorithm.algorithm];
  if (alg !== digest.alg) return { ok: false, reason: `appended signature digest ${alg ?? si.digestAlgorithm.algorithm} is not the d-modsig ${digest.alg}` };
  const sid = si.sid;
  const skid = sid.subjectKeyIdentifier ? Buffer.from(sid.subjectKeyIdentifier.buffer).toString("hex") : undefined;
  const is = sid.issuerAndSerialNumber ? `${Buffer.from(AsnConvert.serialize(sid.issuerAndSerialNumber.issuer)).toString("hex")}/${Buffer.from(sid.issuerAndSerialNumber.serialNumber).toString("hex")}` : undefined;
  const candidates = keys.filter((k) => (skid && k.skid === skid) || (is && k.issuerSerial === is));
  if (!candidates.length) return { ok: false, reason: `no trusted IMA key is the appended signature's signer${skid ? ` (SKID ${skid})` : ""}` };
  const signature = Buffer.from(si.signature.buffer);
  if (si.signedAttrs?.length) return { ok: false, reason: "appended signatures with signed attributes are not supported" };
  if (candidates.some((k) => verifyDigestSignature(k.key, alg, digest.digest, signature))) return { ok: true };
  return { ok: false, reason: "appended signature does not verify with its trusted signer" };
}
