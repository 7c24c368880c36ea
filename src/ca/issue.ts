/**
 * From a checked request to a stored certificate: the template's rules for the CSR (key type,
 * subject, subjectAltNames), the certificate's extensions, issuance under a unique CSPRNG serial,
 * and the certificate record (with what attestation proved, as AD CS keeps EK hashes in its DB).
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { TpmTrustError } from "../errors.js";
import type { IssuedCert, Store } from "../store/index.js";
import type { ParsedCsr } from "../verify/csr.js";
import { loadAuthority } from "./authority.js";
import { issueUnique, toSecond, DAY_MS } from "./signing.js";
import { EKU_NAMES, type CertTemplate, type KeyUsage } from "./templates.js";

const KU_FLAGS: Record<KeyUsage, x509.KeyUsageFlags> = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  nonRepudiation: x509.KeyUsageFlags.nonRepudiation,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  dataEncipherment: x509.KeyUsageFlags.dataEncipherment,
  keyAgreement: x509.KeyUsageFlags.keyAgreement,
};

function denied(rule: string, message: string, details: Record<string, unknown> = {}): TpmTrustError {
  return new TpmTrustError("ERR_POLICY_FAILED", message, { rule, ...details });
}

/** The template's rules for what a CSR may ask for; ERR_POLICY_FAILED naming the rule. */
export function checkRequest(t: CertTemplate, csr: ParsedCsr): void {
  if (!(t.keyTypes as string[]).includes(csr.keyType)) {
    throw denied("keyTypes", `template ${t.name} does not allow ${csr.keyType} keys (allowed: ${t.keyTypes.join(", ")})`, { keyType: csr.keyType });
  }
  if (t.subject.requireCommonName && !csr.commonName) throw denied("subject.requireCommonName", `template ${t.name} needs a CN in the subject`, { subject: csr.subject });
  if (t.subject.pattern && !new RegExp(t.subject.pattern, "u").test(csr.subject)) {
    throw denied("subject.pattern", `subject "${csr.subject}" does not match the template's pattern ${t.subject.pattern}`, { subject: csr.subject });
  }
  for (const san of csr.sans) {
    if (!t.subjectAltNames.allowed.includes(san.type)) throw denied("subjectAltNames.allowed", `template ${t.name} does not allow ${san.type} subjectAltNames`, { san });
    if (t.subjectAltNames.pattern && !new RegExp(t.subjectAltNames.pattern, "u").test(san.value)) {
      throw denied("subjectAltNames.pattern", `subjectAltName ${san.type}:${san.value} does not match the template's pattern`, { san });
    }
  }
}

export interface IssueInput {
  template: CertTemplate;
  csr: ParsedCsr;
  /** certificatePolicies OIDs (none: no extension) */
  policies: string[];
  hostName: string | null;
  /** stored with the certificate */
  attestation: Record<string, unknown> | null;
  now: number;
  /** base URL of the service: the certificate names its CRL at `${publicUrl}/v1/ca/crl` */
  publicUrl?: string;
}

/** Issues and stores a certificate under the current issuing CA. */
export async function issueFromTemplate(store: Store, i: IssueInput): Promise<IssuedCert> {
  const { authority, signer } = await loadAuthority(store);
  const t = i.template;
  const notBefore = toSecond(i.now);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(t.keyUsage.reduce((f, u) => f | KU_FLAGS[u], 0), true),
  ];
  if (t.extendedKeyUsage.length) extensions.push(new x509.ExtendedKeyUsageExtension(t.extendedKeyUsage.map((e) => EKU_NAMES[e] ?? e)));
  if (i.csr.sans.length) {
    extensions.push(new x509.SubjectAlternativeNameExtension(i.csr.sans.map((s): x509.JsonGeneralName => ({ type: s.type === "uri" ? "url" : s.type, value: s.value })), !i.csr.commonName));
  }
  if (i.policies.length) extensions.push(new x509.CertificatePolicyExtension(i.policies, false));
  if (i.publicUrl) extensions.push(new x509.CRLDistributionPointsExtension([`${i.publicUrl.replace(/\/+$/, "")}/v1/ca/crl`]));
  return issueUnique(
    { issuer: signer, publicKey: i.csr.spki, subject: i.csr.request.subjectName, notBefore, notAfter: new Date(notBefore.getTime() + t.validityDays * DAY_MS), extensions },
    (cert, serial) =>
      store.ca.recordCert({
        serial,
        issuerId: authority.id,
        templateName: t.name,
        hostName: i.hostName,
        subject: cert.subject,
        notBefore: cert.notBefore.getTime(),
        notAfter: cert.notAfter.getTime(),
        der: Buffer.from(cert.rawData),
        attestation: i.attestation,
        issuedAt: i.now,
      }),
  );
}
