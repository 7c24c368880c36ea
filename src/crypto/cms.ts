/**
 * CMS EnvelopedData (RFC 5652 §6) with one KeyTransRecipientInfo, as Windows encrypts the EK info
 * (MS-WCCE 2.2.2.7.13) and the challenge answer to the CA exchange certificate: parse the
 * recipient, unwrap the content-encryption key with RSA (PKCS#1 v1.5 or OAEP, RFC 8017 §7), decrypt
 * the content (AES-CBC or 3DES-CBC). Pure.
 */
import { AsnConvert, AsnParser, OctetString } from "@peculiar/asn1-schema";
import { ContentInfo, EnvelopedData, id_envelopedData } from "@peculiar/asn1-cms";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { Name } from "@peculiar/x509";
import { constants, createDecipheriv, privateDecrypt, randomBytes, type KeyObject } from "node:crypto";
import { TpmTrustError } from "../errors.js";

export interface EnvelopeRecipient {
  /** RFC 4514 issuer of the recipient certificate, when identified by issuer and serial */
  issuer?: string;
  /** serial hex (lowercase, as encoded) */
  serial?: string;
  subjectKeyIdentifier?: string;
  keyEncryptionAlgorithm: string;
}

export interface ParsedEnvelope {
  recipient: EnvelopeRecipient;
  encryptedKey: Buffer;
  contentEncryptionAlgorithm: string;
  iv: Buffer;
  encryptedContent: Buffer;
  oaepHash?: string;
}

const CONTENT_CIPHERS: Record<string, { name: string; keyLen: number }> = {
  "2.16.840.1.101.3.4.1.2": { name: "aes-128-cbc", keyLen: 16 },
  "2.16.840.1.101.3.4.1.22": { name: "aes-192-cbc", keyLen: 24 },
  "2.16.840.1.101.3.4.1.42": { name: "aes-256-cbc", keyLen: 32 },
  "1.2.840.113549.3.7": { name: "des-ede3-cbc", keyLen: 24 },
};
const HASH_OIDS: Record<string, string> = { "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512" };
const RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
const RSAES_OAEP = "1.2.840.113549.1.1.7";

/** RSAES-OAEP-params (RFC 8017 A.2.1): hashAlgorithm [0] EXPLICIT, default SHA-1; MGF1 assumed on the same hash. */
function oaepHashOf(params: ArrayBuffer | null | undefined): string | undefined {
  if (!params) return "sha1";
  const der = Buffer.from(params);
  if (der.length < 2 || der[0] !== 0x30) return undefined;
  if (der.length === 2 || der[2] !== 0xa0) return "sha1";
  try {
    return HASH_OIDS[AsnParser.parse(der.subarray(4, 4 + der[3]), AlgorithmIdentifier).algorithm];
  } catch {
    return undefined;
  }
}

function bad(message: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_FORMAT", `CMS EnvelopedData: ${message}`);
}

/** EnvelopedData, bare or in a ContentInfo; exactly one KeyTransRecipientInfo. */
export function parseEnvelope(der: Uint8Array): ParsedEnvelope {
  let env: EnvelopedData;
  try {
    let inner: ArrayBuffer | Uint8Array = der;
    try {
      const ci = AsnParser.parse(der, ContentInfo);
      if (ci.contentType !== id_envelopedData) throw bad(`content type ${ci.contentType} is not EnvelopedData`);
      inner = ci.content;
    } catch (e) {
      if (e instanceof TpmTrustError) throw e; // a ContentInfo of another type
    }
    env = AsnParser.parse(inner, EnvelopedData);
  } catch (e) {
    if (e instanceof TpmTrustError) throw e;
    throw bad(`does not parse: ${(e as Error).message}`);
  }
  if (env.recipientInfos.length !== 1 || !env.recipientInfos[0].ktri) throw bad(`expected one KeyTransRecipientInfo, found ${env.recipientInfos.length} recipient(s)`);
  const ktri = env.recipientInfos[0].ktri;
  const rid = ktri.rid;
  const recipient: EnvelopeRecipient = { keyEncryptionAlgorithm: ktri.keyEncryptionAlgorithm.algorithm };
  if (rid.issuerAndSerialNumber) {
    recipient.issuer = new Name(AsnConvert.serialize(rid.issuerAndSerialNumber.issuer)).toString();
    recipient.serial = Buffer.from(rid.issuerAndSerialNumber.serialNumber).toString("hex");
  } else if (rid.subjectKeyIdentifier) recipient.subjectKeyIdentifier = Buffer.from(rid.subjectKeyIdentifier.buffer).toString("hex");
  let oaepHash: string | undefined;
  if (recipient.keyEncryptionAlgorithm === RSAES_OAEP) {
    oaepHash = oaepHashOf(ktri.keyEncryptionAlgorithm.parameters);
    if (!oaepHash) throw bad("the OAEP hash is not supported");
  } else if (recipient.keyEncryptionAlgorithm !== RSA_ENCRYPTION) throw bad(`key encryption ${recipient.keyEncryptionAlgorithm} is not RSA`);
  const eci = env.encryptedContentInfo;
  const cea = eci.contentEncryptionAlgorithm;
  if (!CONTENT_CIPHERS[cea.algorithm]) throw bad(`content encryption ${cea.algorithm} is not supported (AES-CBC, 3DES-CBC)`);
  if (!cea.parameters) throw bad("the content encryption algorithm has no IV");
  const iv = Buffer.from(AsnParser.parse(cea.parameters, OctetString).buffer);
  const ec = eci.encryptedContent;
  const encryptedContent = ec?.value ? Buffer.from(ec.value.buffer) : ec?.constructedValue ? Buffer.concat(ec.constructedValue.map((o) => Buffer.from(o.buffer))) : undefined;
  if (!encryptedContent) throw bad("no encrypted content");
  return { recipient, encryptedKey: Buffer.from(ktri.encryptedKey.buffer), contentEncryptionAlgorithm: cea.algorithm, iv, encryptedContent, ...(oaepHash ? { oaepHash } : {}) };
}

/**
 * PKCS#1 v1.5 unpadding (RFC 8017 §7.2.2) with implicit rejection: a malformed block yields a random
 * key of the expected length, so a padding oracle only ever sees "the content did not decrypt".
 */
function unpadPkcs1(block: Buffer, keyLen: number): Buffer {
  const fallback = randomBytes(keyLen);
  let sep = 0;
  for (let i = 2; i < block.length; i++) {
    if (sep === 0 && block[i] === 0) sep = i;
  }
  const ok = block[0] === 0 && block[1] === 2 && sep >= 10 && block.length - sep - 1 === keyLen;
  return ok ? block.subarray(sep + 1) : fallback;
}

/** Decrypts the envelope's content with the recipient's RSA private key; ERR_DECRYPT_FAILED when it cannot. */
export function openEnvelope(env: ParsedEnvelope, key: KeyObject): Buffer {
  const cipher = CONTENT_CIPHERS[env.contentEncryptionAlgorithm];
  let cek: Buffer;
  try {
    cek = env.oaepHash
      ? privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: env.oaepHash }, env.encryptedKey)
      : unpadPkcs1(privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, env.encryptedKey), cipher.keyLen);
    if (cek.length !== cipher.keyLen) throw new Error("wrong key length");
    const d = createDecipheriv(cipher.name, cek, env.iv);
    return Buffer.concat([d.update(env.encryptedContent), d.final()]);
  } catch {
    throw new TpmTrustError("ERR_DECRYPT_FAILED", "the enveloped data does not decrypt with this CA exchange key (encrypted to another certificate, or corrupted)");
  }
}
