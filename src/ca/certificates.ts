/** Issued certificates as the API and CLI show them: the one place a stored certificate becomes an API object. */
import { certificatePem } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import type { IssuedCert, Store } from "../store/index.js";
import { REVOCATION_REASONS } from "./crl.js";

export interface CertView {
  serial: string;
  subject: string;
  template: string | null;
  host: string | null;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  revokedAt: string | null;
  revocationReason: string | null;
  attestation: Record<string, unknown> | null;
}

const REASON_NAMES = Object.fromEntries(Object.entries(REVOCATION_REASONS).map(([k, v]) => [v, k]));
const iso = (ms: number) => new Date(ms).toISOString();

export function certView(c: IssuedCert): CertView {
  return {
    serial: c.serial,
    subject: c.subject,
    template: c.templateName,
    host: c.hostName,
    notBefore: iso(c.notBefore),
    notAfter: iso(c.notAfter),
    issuedAt: iso(c.issuedAt),
    revokedAt: c.revokedAt === null ? null : iso(c.revokedAt),
    revocationReason: c.revocationReason === null ? null : (REASON_NAMES[c.revocationReason] ?? String(c.revocationReason)),
    attestation: c.attestation,
  };
}

/** Certificates issued under templates (newest first); AK certificates of the attestation CA are listed with `all`. */
export async function listCertificates(store: Store, o: { template?: string; host?: string; revoked?: boolean; all?: boolean; limit?: number } = {}): Promise<CertView[]> {
  const rows = await store.ca.listCerts({ templateName: o.template, hostName: o.host, revoked: o.revoked, limit: o.limit ?? 1000 });
  return rows.filter((c) => o.all || c.templateName !== null).map(certView);
}

/** One certificate, with its PEM. */
export async function getCertificate(store: Store, serial: string): Promise<CertView & { certificatePem: string }> {
  const c = await store.ca.getCert(serial.toLowerCase().replace(/:/g, ""));
  if (!c) throw new TpmTrustError("ERR_NOT_FOUND", `no certificate with serial ${serial}`);
  return { ...certView(c), certificatePem: certificatePem(c.der) };
}
