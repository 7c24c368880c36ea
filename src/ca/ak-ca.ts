/**
 * The service's attestation CA: a self-signed ECDSA P-256 CA that certifies AKs after credential
 * activation (EKU tcg-kp-AIKCertificate 2.23.133.8.3), so relying parties can check an AK offline
 * against `GET /v1/attestation-ca`. Keys, serials and signing are the CA primitives of src/ca/signing.ts.
 *
 * Key custody: the private key is a PKCS#8 PEM file with mode 0600, `attestation-ca-key.pem`,
 * beside the SQLite database (or in $TPMTRUST_STATE_DIR, else `.tpmtrust/`, for PostgreSQL). The
 * store keeps the CA certificate and the key's path (`ca_authorities`, kind "attestation"), never the
 * key. Instances sharing one PostgreSQL must see the same file at that path. The CA is created on
 * first use.
 */
import * as x509 from "@peculiar/x509";
import { dirname, resolve } from "node:path";
import { spkiFromTpmt } from "../crypto/keys.js";
import { TpmTrustError } from "../errors.js";
import { isPostgresUrl, type CaAuthority, type Repos, type Store } from "../store/index.js";
import type { TpmtPublic } from "../tpm/types.js";
import { EKU_AIK_CERTIFICATE, loadCertificate, validateChain } from "../verify/ek/index.js";
import { createSelfSignedCa, DAY_MS, generateCaKey, loadSigner, randomSerial, readKeyFile, signCertificate, toSecond, writeKeyFile, type Signer } from "./signing.js";

export const ATTESTATION_CA_KIND = "attestation";
const KEY_FILE = "attestation-ca-key.pem";
const CA_YEARS = 20;
/** AK certificates live a year (never beyond the CA). */
const AK_CERT_DAYS = 365;

export interface AttestationCa extends Signer {
  authority: CaAuthority;
}

/** Where a new CA's key file goes for this store. */
function attestationCaKeyPath(store: Store): string {
  const dir = process.env.TPMTRUST_STATE_DIR ?? (isPostgresUrl(store.location) || store.location === ":memory:" ? ".tpmtrust" : dirname(store.location));
  return resolve(dir, KEY_FILE);
}

/** The current attestation CA, created (key file, self-signed certificate, store entry) on first use. */
export async function attestationCa(store: Store, now: number): Promise<AttestationCa> {
  const current = await store.ca.currentAuthority(ATTESTATION_CA_KIND);
  if (current) return { authority: current, ...(await loadSigner(current.cert, current.keyRef.replace(/^file:/, ""), "attestation CA key")) };
  const path = attestationCaKeyPath(store);
  // a racing instance's key wins: whoever links the file first
  writeKeyFile(path, generateCaKey("ecdsa-p256"));
  const key = readKeyFile(path, "attestation CA key");
  const notBefore = toSecond(now);
  const certificate = await createSelfSignedCa(key, {
    subject: [{ O: ["tpmtrust"] }, { CN: ["tpmtrust attestation CA"] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + CA_YEARS * 365 * DAY_MS),
    pathLength: 0,
  });
  // instances creating the CA at once: the first to commit wins, the others use its certificate
  const authority = await store.transaction(async (tx) => {
    const r = await tx.ca.addFirstAuthority({ kind: ATTESTATION_CA_KIND, cert: Buffer.from(certificate.rawData), keyRef: `file:${path}`, at: now });
    if (r.created) {
      await tx.audit.append({
        actor: "system",
        action: "ca.attestation.create",
        subject: r.authority.id,
        outcome: "success",
        details: { subject: certificate.subject, serial: certificate.serialNumber, keyFile: path, notAfter: certificate.notAfter.toISOString() },
        at: now,
      });
    }
    return r.authority;
  });
  return { authority, ...(await loadSigner(authority.cert, authority.keyRef.replace(/^file:/, ""), "attestation CA key")) };
}

/** An AK certificate signed but not yet recorded. */
export interface SignedAkCertificate {
  serial: string;
  cert: x509.X509Certificate;
}

/**
 * Signs an AK certificate: subject O=tpmtrust, CN=<host>, the AK's key, EKU 2.23.133.8.3, key
 * usage digitalSignature, not a CA; serial 127 bits from the CSPRNG. Touches no store, so it can
 * be drawn before the transaction that records it.
 */
export async function signAkCertificate(ca: AttestationCa, o: { hostName: string; akPublic: TpmtPublic; now: number }): Promise<SignedAkCertificate> {
  const notBefore = toSecond(o.now);
  const serial = randomSerial();
  const cert = await signCertificate(
    {
      issuer: ca,
      publicKey: spkiFromTpmt(o.akPublic),
      subject: [{ O: ["tpmtrust"] }, { CN: [o.hostName] }],
      notBefore,
      notAfter: new Date(notBefore.getTime() + AK_CERT_DAYS * DAY_MS),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([EKU_AIK_CERTIFICATE]),
      ],
    },
    serial,
  );
  return { serial, cert };
}

/**
 * Records a signed AK certificate in ca_certs with the AK's Name, through `repos` (the caller's
 * transaction). Not retried: with 127 random bits a serial collision does not happen in practice,
 * and one fails the caller cleanly (ERR_CONFLICT) rather than being mistaken for another conflict.
 */
export async function recordAkCertificate(repos: Repos, ca: AttestationCa, c: SignedAkCertificate, o: { hostName: string; akName: Buffer; now: number }): Promise<Buffer> {
  const der = Buffer.from(c.cert.rawData);
  await repos.ca.recordCert({
    serial: c.serial,
    issuerId: ca.authority.id,
    templateName: null,
    hostName: o.hostName,
    subject: c.cert.subject,
    notBefore: c.cert.notBefore.getTime(),
    notAfter: c.cert.notAfter.getTime(),
    der,
    attestation: { kind: "ak", akName: o.akName.toString("hex") },
    issuedAt: o.now,
  });
  return der;
}

/**
 * An AK certificate presented back to tpmtrust (the AIK info of a Windows request, MS-WCCE
 * 2.2.2.7.15), trusted only as this attestation CA's own word: it chains to the current attestation
 * CA, is valid now, lists EKU 2.23.133.8.3 and certifies `aikPublic` (MS-WCCE 3.2.2.6.2.1.2.5.1),
 * is the very certificate recorded when the AK was activated, and is not revoked. Any other CA:
 * ERR_CHAIN_UNTRUSTED. Answers the AK's Name and the host it was issued for.
 */
export async function verifyAkCertificate(store: Store, der: Buffer, aikPublic: Buffer, now: number): Promise<{ serial: string; akName: Buffer; hostName: string }> {
  const leaf = loadCertificate(der);
  const untrusted = (why: string) =>
    new TpmTrustError("ERR_CHAIN_UNTRUSTED", `the AIK certificate (${leaf.label}) ${why}: tpmtrust trusts an AIK only by the certificate its attestation CA issued when the AK was activated`, {
      certificate: leaf.label,
      serial: leaf.serialNumber,
    });
  const ca = await store.ca.currentAuthority(ATTESTATION_CA_KIND);
  if (!ca) throw untrusted("cannot be judged: this service has no attestation CA");
  validateChain({ leaf, roots: [loadCertificate(ca.cert)], at: new Date(now), requiredEku: EKU_AIK_CERTIFICATE, expectedKey: aikPublic, allowSha1: false });
  if (!leaf.extendedKeyUsage?.includes(EKU_AIK_CERTIFICATE)) throw new TpmTrustError("ERR_CERT_EKU", `${leaf.label}: an AIK certificate must list EKU ${EKU_AIK_CERTIFICATE}`);
  const record = await store.ca.getCert(leaf.serialNumber);
  const akName = record?.attestation?.kind === "ak" && typeof record.attestation.akName === "string" ? record.attestation.akName : undefined;
  if (!record || record.issuerId !== ca.id || !record.der.equals(leaf.der) || !akName || !record.hostName) throw untrusted("is not one this attestation CA recorded issuing for an AK");
  if (record.revokedAt !== null) {
    throw new TpmTrustError("ERR_CERT_REVOKED", `the AIK certificate ${record.serial} (AK of host ${record.hostName}) was revoked at ${new Date(record.revokedAt).toISOString()}`, {
      serial: record.serial,
      host: record.hostName,
      revocationReason: record.revocationReason,
    });
  }
  return { serial: record.serial, akName: Buffer.from(akName, "hex"), hostName: record.hostName };
}
