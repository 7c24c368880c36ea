/**
 * Certificate-signing primitives shared by every CA of tpmtrust (the key attestation CA and the
 * attestation CA that certifies AKs): CA keys in PKCS#8 files with mode 0600, CSPRNG serial
 * numbers, self-signed and issued certificates, serial-collision retry, PEM.
 */
import * as x509 from "@peculiar/x509";
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { newKeyPair, type KeyPairAlg } from "../crypto/keygen.js";
import { TpmTrustError } from "../errors.js";

export type CaKeyAlg = KeyPairAlg;
export const CA_KEY_ALGS: readonly CaKeyAlg[] = ["ecdsa-p256", "rsa-2048"];

/** A CA that can sign: its certificate, its private key as a CryptoKey, and the algorithm it signs with. */
export interface Signer {
  certificate: x509.X509Certificate;
  signingKey: CryptoKey;
  signingAlgorithm: Algorithm | EcdsaParams;
}

export const DAY_MS = 86_400_000;

/** A new private key. */
export function generateCaKey(alg: CaKeyAlg): KeyObject {
  return newKeyPair(alg).privateKey;
}

/**
 * Writes a private key as PKCS#8 PEM with mode 0600, atomically and never over an existing file
 * (temp file + link): of racing writers exactly one key lands; `false` if the path was taken.
 */
export function writeKeyFile(path: string, key: KeyObject): boolean {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot create ${dirname(path)}: ${(e as Error).message}`, { path });
  }
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}`);
  try {
    writeFileSync(tmp, key.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST" && existsSync(path)) return false;
    throw new TpmTrustError("ERR_IO", `cannot write ${path}: ${(e as Error).message}`, { path });
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created */
    }
  }
}

/** Reads a PKCS#8 key file; ERR_IO if missing, readable by group/others, or not a key. */
export function readKeyFile(path: string, what = "CA key"): KeyObject {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
  if (st.mode & 0o077) throw new TpmTrustError("ERR_IO", `${what} ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`, { path });
  try {
    return createPrivateKey(readFileSync(path));
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `${what} ${path} does not load: ${(e as Error).message}`, { path });
  }
}

/** The WebCrypto algorithm for a key, and how it signs (SHA-256). */
function algorithmsOf(key: KeyObject): { importAlg: RsaHashedImportParams | EcKeyImportParams; signingAlgorithm: Algorithm | EcdsaParams } {
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== "prime256v1") throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `CA keys are P-256 or RSA, not ${curve}`);
    return { importAlg: { name: "ECDSA", namedCurve: "P-256" }, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams };
  }
  if (key.asymmetricKeyType === "rsa") return { importAlg: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, signingAlgorithm: { name: "RSASSA-PKCS1-v1_5" } };
  throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `CA keys are P-256 or RSA, not ${key.asymmetricKeyType}`);
}

/** The CryptoKey pair of a private KeyObject and the algorithm to sign with. */
export async function cryptoKeys(key: KeyObject): Promise<{ keys: CryptoKeyPair; signingAlgorithm: Algorithm | EcdsaParams }> {
  const { importAlg, signingAlgorithm } = algorithmsOf(key);
  const subtle = webcrypto.subtle;
  const keys = {
    privateKey: (await subtle.importKey("pkcs8", key.export({ type: "pkcs8", format: "der" }), importAlg, false, ["sign"])) as CryptoKey,
    publicKey: (await subtle.importKey("spki", createPublicKey(key).export({ type: "spki", format: "der" }), importAlg, true, ["verify"])) as CryptoKey,
  };
  return { keys, signingAlgorithm };
}

/** A Signer for a stored CA certificate and its key file; ERR_IO when the key is not the certificate's. */
export function loadSigner(certDer: Uint8Array, keyPath: string, what = "CA key"): Promise<Signer> {
  return signerFor(certDer, readKeyFile(keyPath, what), `${what} ${keyPath}`);
}

/** A Signer for a CA certificate and its private key; ERR_IO when the key is not the certificate's. */
export async function signerFor(certDer: Uint8Array, key: KeyObject, what = "CA key"): Promise<Signer> {
  const certificate = new x509.X509Certificate(new Uint8Array(certDer));
  if (!createPublicKey(key).export({ type: "spki", format: "der" }).equals(Buffer.from(certificate.publicKey.rawData))) {
    throw new TpmTrustError("ERR_IO", `${what} does not belong to the CA certificate ${certificate.subject}`);
  }
  const { keys, signingAlgorithm } = await cryptoKeys(key);
  return { certificate, signingKey: keys.privateKey, signingAlgorithm };
}

/**
 * A positive serial number of 16 bytes from the CSPRNG (RFC 5280 §4.1.2.2: ≤ 20 octets, positive;
 * CA/B BR §7.1: ≥ 64 bits of entropy), minimally encoded: the top bit is clear and the first
 * octet non-zero. Lowercase hex.
 */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0] & 0x7f || 0x01;
  return b.toString("hex");
}

/** Whole seconds (X.509 times have no milliseconds). */
export const toSecond = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);

export interface CaCertificateParams {
  subject: x509.JsonName;
  notBefore: Date;
  notAfter: Date;
  /** basicConstraints pathLenConstraint */
  pathLength: number;
  extensions?: x509.Extension[];
}

/** A self-signed CA certificate: CA:true (critical), keyCertSign|cRLSign (critical), SKI. */
export async function createSelfSignedCa(key: KeyObject, p: CaCertificateParams): Promise<x509.X509Certificate> {
  const { keys, signingAlgorithm } = await cryptoKeys(key);
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: p.subject,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, p.pathLength, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(p.extensions ?? []),
    ],
  });
}

export interface IssueParams {
  issuer: Signer;
  /** the subject's public key: SPKI DER or a parsed key */
  publicKey: Uint8Array | x509.PublicKey;
  subject: x509.JsonName | x509.Name | string;
  notBefore: Date;
  /** capped at the issuer's notAfter */
  notAfter: Date;
  /** extensions after the ones every certificate gets (AKI, SKI) */
  extensions: x509.Extension[];
}

/** Signs one certificate with `serial`. */
export async function signCertificate(p: IssueParams, serial: string): Promise<x509.X509Certificate> {
  const publicKey = p.publicKey instanceof x509.PublicKey ? p.publicKey : new x509.PublicKey(new Uint8Array(p.publicKey));
  const notAfter = new Date(Math.min(p.notAfter.getTime(), p.issuer.certificate.notAfter.getTime()));
  return x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: p.subject,
    issuer: p.issuer.certificate.subjectName,
    notBefore: p.notBefore,
    notAfter,
    publicKey,
    signingKey: p.issuer.signingKey,
    signingAlgorithm: p.issuer.signingAlgorithm,
    extensions: [...p.extensions, await x509.AuthorityKeyIdentifierExtension.create(p.issuer.certificate), await x509.SubjectKeyIdentifierExtension.create(publicKey)],
  });
}

/**
 * Issues a certificate under a fresh CSPRNG serial and hands it to `record` (which stores it and
 * throws ERR_CONFLICT when the serial is taken): a collision (p ≈ 2^-126) draws a new serial.
 */
export async function issueUnique<T>(p: IssueParams, record: (cert: x509.X509Certificate, serial: string) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const serial = randomSerial();
    const cert = await signCertificate(p, serial);
    try {
      return await record(cert, serial);
    } catch (e) {
      if (!(e instanceof TpmTrustError && e.code === "ERR_CONFLICT") || attempt >= 2) throw e;
    }
  }
}

