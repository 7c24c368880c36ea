/**
 * From a checked request to a stored certificate: the template's rules for the CSR's key and for the
 * certificate's names (structure, whole-value patterns, an attested host's own names), the certificate's extensions, issuance under a unique CSPRNG serial,
 * and the certificate record (with what attestation proved, as AD CS keeps EK hashes in its DB).
 */
import * as x509 from "@peculiar/x509";
import { TpmTrustError } from "../errors.js";
import type { IssuedCert, Repos, Store } from "../store/index.js";
import { subjectText, type CsrSan, type ParsedCsr, type SubjectAttribute } from "../verify/csr.js";
import { loadAuthority } from "./authority.js";
import { issueUnique, toSecond, DAY_MS } from "./signing.js";
import { EKU_NAMES, wholeMatch, type CertTemplate, type KeyUsage } from "./templates.js";

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

/** The names a certificate will carry: the subject's RDNs and its subjectAltNames. */
export interface CertNames {
  subject: SubjectAttribute[][];
  /** DER of the subject when it is the CSR's own (kept byte for byte) */
  subjectDer?: Buffer;
  sans: CsrSan[];
}

const CN = "2.5.4.3";

/** The CSR's own names. */
export const requestedNames = (csr: ParsedCsr): CertNames => ({ subject: csr.subjectRdns, subjectDer: csr.subjectDer, sans: csr.sans });

/** The names of a registered host (`subjectFrom: host`): CN=<host>, and dns:<host> when the template allows DNS SANs. */
export function hostNames(t: CertTemplate, host: string): CertNames {
  return { subject: [[{ type: CN, name: "CN", value: host }]], sans: t.subjectAltNames.allowed.includes("dns") ? [{ type: "dns", value: host }] : [] };
}

/** The template's rule for the CSR's key; ERR_POLICY_FAILED naming the rule. */
export function checkKey(t: CertTemplate, csr: ParsedCsr): void {
  if (!(t.keyTypes as string[]).includes(csr.keyType)) {
    throw denied("keyTypes", `template ${t.name} does not allow ${csr.keyType} keys (allowed: ${t.keyTypes.join(", ")})`, { keyType: csr.keyType });
  }
}

/**
 * The template's rules for a certificate's names, on the decoded structure: one attribute per RDN,
 * at most one CN, the subject pattern over the canonical text and the SAN pattern over each value,
 * both matching the whole value. ERR_POLICY_FAILED naming the rule.
 */
export function checkNames(t: CertTemplate, n: CertNames): void {
  const subject = subjectText(n.subject);
  if (n.subject.some((rdn) => rdn.length !== 1)) throw denied("subject.structure", `subject "${subject}" has a multi-valued RDN`, { subject });
  const cns = n.subject.flat().filter((a) => a.type === CN);
  if (cns.length > 1) throw denied("subject.structure", `subject "${subject}" has ${cns.length} CNs; a certificate names one`, { subject });
  if (t.subject.requireCommonName && cns.length === 0) throw denied("subject.requireCommonName", `template ${t.name} needs a CN in the subject`, { subject });
  if (t.subject.pattern && !wholeMatch(t.subject.pattern).test(subject)) {
    throw denied("subject.pattern", `subject "${subject}" does not match the template's pattern ${t.subject.pattern} as a whole`, { subject });
  }
  for (const san of n.sans) {
    if (!t.subjectAltNames.allowed.includes(san.type)) throw denied("subjectAltNames.allowed", `template ${t.name} does not allow ${san.type} subjectAltNames`, { san });
    if (t.subjectAltNames.pattern && !wholeMatch(t.subjectAltNames.pattern).test(san.value)) {
      throw denied("subjectAltNames.pattern", `subjectAltName ${san.type}:${san.value} does not match the template's pattern as a whole`, { san });
    }
  }
}

/** An attested request's own names may only be the host's: every CN and every SAN is a DNS name equal to `host`. */
export function checkHostNames(n: CertNames, host: string): void {
  const mine = (v: string) => v.toLowerCase() === host.toLowerCase();
  for (const a of n.subject.flat()) {
    if (a.type === CN && !mine(a.value)) throw denied("subject.host", `the attested host ${host} may not name ${JSON.stringify(a.value)} in its subject`, { host, name: a.value });
  }
  for (const san of n.sans) {
    if (san.type !== "dns" || !mine(san.value)) throw denied("subject.host", `the attested host ${host} may not name ${san.type}:${san.value}`, { host, san });
  }
}

/** The template's rules for a CSR asking for its own names (key type, then names). */
export function checkRequest(t: CertTemplate, csr: ParsedCsr): void {
  checkKey(t, csr);
  checkNames(t, requestedNames(csr));
}

export interface IssueInput {
  template: CertTemplate;
  csr: ParsedCsr;
  /** what the certificate names (checked by the caller) */
  names: CertNames;
  /** certificatePolicies OIDs (none: no extension) */
  policies: string[];
  hostName: string | null;
  /** stored with the certificate */
  attestation: Record<string, unknown> | null;
  now: number;
  /** base URL of the service: the certificate names its CRL at `${publicUrl}/v1/ca/crl` */
  publicUrl?: string;
  /**
   * The issuance's audit entry (and whatever else stands or falls with the certificate), written
   * in the transaction that records it: when it throws, the certificate is neither stored nor returned.
   */
  commit: (tx: Repos, cert: IssuedCert) => Promise<void>;
}

/** Issues and stores a certificate under the current issuing CA, with `i.commit` in the same transaction. */
export async function issueFromTemplate(store: Store, i: IssueInput): Promise<IssuedCert> {
  const { authority, signer } = await loadAuthority(store);
  const t = i.template;
  const notBefore = toSecond(i.now);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(t.keyUsage.reduce((f, u) => f | KU_FLAGS[u], 0), true),
  ];
  if (t.extendedKeyUsage.length) extensions.push(new x509.ExtendedKeyUsageExtension(t.extendedKeyUsage.map((e) => EKU_NAMES[e] ?? e)));
  const { names } = i;
  const hasCn = names.subject.flat().some((a) => a.type === CN);
  if (names.sans.length) {
    extensions.push(new x509.SubjectAlternativeNameExtension(names.sans.map((s): x509.JsonGeneralName => ({ type: s.type === "uri" ? "url" : s.type, value: s.value })), !hasCn));
  }
  if (i.policies.length) extensions.push(new x509.CertificatePolicyExtension(i.policies, false));
  if (i.publicUrl) extensions.push(new x509.CRLDistributionPointsExtension([`${i.publicUrl.replace(/\/+$/, "")}/v1/ca/crl`]));
  return issueUnique(
    { issuer: signer, publicKey: i.csr.spki, subject: names.subjectDer ? new x509.Name(new Uint8Array(names.subjectDer)) : names.subject.map((rdn) => Object.fromEntries(rdn.map((a) => [a.type, [a.value]]))), notBefore, notAfter: new Date(notBefore.getTime() + t.validityDays * DAY_MS), extensions },
    (cert, serial) =>
      store.transaction(async (tx) => {
        const issued = await tx.ca.recordCert({
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
        });
        await i.commit(tx, issued);
        return issued;
      }),
  );
}
