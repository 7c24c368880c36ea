/**
 * The service's attestation CA: a self-signed ECDSA P-256 CA that certifies AKs after credential
 * activation (EKU tcg-kp-AIKCertificate 2.23.133.8.3), so relying parties can check an AK offline
 * against `GET /v1/attestation-ca`.
 *
 * Key custody: the private key is a PKCS#8 PEM file with mode 0600, `attestation-ca-key.pem`,
 * beside the SQLite database (or in $TPMTRUST_STATE_DIR, else `.tpmtrust/`, for PostgreSQL). The
 * store keeps the CA certificate and the key's path (`ca_authorities`, kind "attestation"), never the
 * key. Instances sharing one PostgreSQL must see the same file at that path. The CA is created on
 * first use.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { TpmTrustError } from "../errors.js";
import { spkiFromTpmt } from "../crypto/keys.js";
import { isPostgresUrl, type CaAuthority, type Store } from "../store/index.js";
import type { TpmtPublic } from "../tpm/types.js";
import { EKU_AIK_CERTIFICATE } from "../verify/ek/index.js";

export const ATTESTATION_CA_KIND = "attestation";
const KEY_FILE = "attestation-ca-key.pem";
const CA_YEARS = 20;
const DAY = 86_400_000;
/** AK certificates live a year (never beyond the CA). */
export const AK_CERT_DAYS = 365;
const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

export interface AttestationCa {
  authority: CaAuthority;
  certificate: x509.X509Certificate;
  signingKey: CryptoKey;
}

/** Where a new CA's key file goes for this store. */
export function attestationCaKeyPath(store: Store): string {
  const dir = process.env.TPMTRUST_STATE_DIR ?? (isPostgresUrl(store.location) || store.location === ":memory:" ? ".tpmtrust" : dirname(store.location));
  return resolve(dir, KEY_FILE);
}

/** A positive serial of 16 CSPRNG bytes (RFC 5280 §4.1.2.2), minimally encoded. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0] & 0x7f || 0x01;
  return b.toString("hex");
}

function readKeyFile(path: string): KeyObject {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `attestation CA key ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
  if (st.mode & 0o077) throw new TpmTrustError("ERR_IO", `attestation CA key ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`, { path });
  try {
    return createPrivateKey(readFileSync(path));
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `attestation CA key ${path} does not load: ${(e as Error).message}`, { path });
  }
}

/** Loads the key at `path`, or creates it there (atomically: a racing instance's key wins). */
function loadOrCreateKey(path: string): KeyObject {
  if (existsSync(path)) return readKeyFile(path);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const tmp = join(dirname(path), `.${KEY_FILE}.${process.pid}.${randomBytes(4).toString("hex")}`);
  writeFileSync(tmp, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new TpmTrustError("ERR_IO", `cannot write ${path}: ${(e as Error).message}`, { path });
  } finally {
    unlinkSync(tmp);
  }
  return readKeyFile(path);
}

async function cryptoKeys(key: KeyObject): Promise<CryptoKeyPair> {
  const subtle = webcrypto.subtle;
  return {
    privateKey: (await subtle.importKey("pkcs8", key.export({ type: "pkcs8", format: "der" }), ECDSA, false, ["sign"])) as CryptoKey,
    publicKey: (await subtle.importKey("spki", createPublicKey(key).export({ type: "spki", format: "der" }), ECDSA, true, ["verify"])) as CryptoKey,
  };
}

/** The current attestation CA, created (key file, self-signed certificate, store entry) on first use. */
export async function attestationCa(store: Store, now: number): Promise<AttestationCa> {
  const current = await store.ca.currentAuthority(ATTESTATION_CA_KIND);
  if (current) {
    const path = current.keyRef.replace(/^file:/, "");
    const key = readKeyFile(path);
    const certificate = new x509.X509Certificate(new Uint8Array(current.cert));
    const spki = Buffer.from(certificate.publicKey.rawData);
    if (!createPublicKey(key).export({ type: "spki", format: "der" }).equals(spki)) {
      throw new TpmTrustError("ERR_IO", `attestation CA key ${path} does not belong to the CA certificate in the store`, { path });
    }
    return { authority: current, certificate, signingKey: (await cryptoKeys(key)).privateKey };
  }
  const path = attestationCaKeyPath(store);
  const keys = await cryptoKeys(loadOrCreateKey(path));
  const notBefore = new Date(Math.floor(now / 1000) * 1000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ O: ["tpmtrust"] }, { CN: ["tpmtrust attestation CA"] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + CA_YEARS * 365 * DAY),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const authority = await store.ca.addAuthority({ kind: ATTESTATION_CA_KIND, cert: Buffer.from(certificate.rawData), keyRef: `file:${path}`, at: now });
  await store.audit.append({
    actor: "system",
    action: "ca.attestation.create",
    subject: authority.id,
    outcome: "success",
    details: { subject: certificate.subject, serial: certificate.serialNumber, keyFile: path, notAfter: certificate.notAfter.toISOString() },
    at: now,
  });
  return { authority, certificate, signingKey: keys.privateKey };
}

/**
 * Issues an AK certificate: subject O=tpmtrust, CN=<host>, the AK's key, EKU 2.23.133.8.3, key
 * usage digitalSignature, not a CA; serial from the CSPRNG; stored in ca_certs with the AK's Name.
 */
export async function issueAkCertificate(store: Store, ca: AttestationCa, o: { hostName: string; akPublic: TpmtPublic; akName: Buffer; now: number }): Promise<Buffer> {
  const notBefore = new Date(Math.floor(o.now / 1000) * 1000);
  const notAfter = new Date(Math.min(notBefore.getTime() + AK_CERT_DAYS * DAY, ca.certificate.notAfter.getTime()));
  const publicKey = new x509.PublicKey(new Uint8Array(spkiFromTpmt(o.akPublic)));
  for (let attempt = 0; ; attempt++) {
    const serial = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: [{ O: ["tpmtrust"] }, { CN: [o.hostName] }],
      issuer: ca.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([EKU_AIK_CERTIFICATE]),
        await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ],
    });
    const der = Buffer.from(cert.rawData);
    try {
      await store.ca.recordCert({
        serial,
        issuerId: ca.authority.id,
        templateName: null,
        hostName: o.hostName,
        subject: cert.subject,
        notBefore: notBefore.getTime(),
        notAfter: notAfter.getTime(),
        der,
        attestation: { kind: "ak", akName: o.akName.toString("hex") },
        issuedAt: o.now,
      });
      return der;
    } catch (e) {
      // a serial collision (2^-127) draws again
      if (!(e instanceof TpmTrustError && e.code === "ERR_CONFLICT") || attempt >= 2) throw e;
    }
  }
}

/** PEM of a DER certificate. */
export function certificatePem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END CERTIFICATE-----\n`;
}
