/**
 * Revocation and the CRL of the issuing CA (RFC 5280 §5): revoking records the reason and publishes
 * a new CRL; GET /v1/ca/crl serves the newest one, publishing a fresh CRL once half its lifetime
 * has passed. CRL numbers increase monotonically across instances (store.ca.publishCrl).
 */
import * as x509 from "@peculiar/x509";
import { TpmTrustError, isAuditableFailure } from "../errors.js";
import type { CaAuthority, Crl, IssuedCert, NewAuditEntry, Repos, Store } from "../store/index.js";
import { loadAuthority } from "./authority.js";
import { DAY_MS, toSecond, type Signer } from "./signing.js";

/** RFC 5280 §5.3.1 CRLReason names (7 is unused; removeFromCRL only in delta CRLs). */
export const REVOCATION_REASONS: Record<string, number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
};
const CRL_LIFETIME_MS = 7 * DAY_MS;

/** A reason given by name or number; ERR_VALIDATION otherwise. */
function revocationReason(v: string | number): number {
  const n = typeof v === "number" ? v : /^\d+$/.test(v) ? Number(v) : REVOCATION_REASONS[v];
  if (n === undefined || !Object.values(REVOCATION_REASONS).includes(n)) {
    throw new TpmTrustError("ERR_VALIDATION", `revocation reason must be one of ${Object.keys(REVOCATION_REASONS).join(", ")} (or its RFC 5280 number), got ${JSON.stringify(v)}`, { field: "reason" });
  }
  return n;
}

/** Signs and stores a new CRL of the current issuing CA listing every revoked certificate it issued. */
export async function publishCrl(store: Store, now: number): Promise<Crl> {
  return signCrl(store, await loadAuthority(store), now);
}

/** publishCrl of `ca` through `repos`: a transaction's, for a CRL that commits with a revocation. */
function signCrl(repos: Repos, { authority, signer }: { authority: CaAuthority; signer: Signer }, now: number): Promise<Crl> {
  const thisUpdate = toSecond(now);
  const nextUpdate = new Date(thisUpdate.getTime() + CRL_LIFETIME_MS);
  return repos.ca.publishCrl(authority.id, async (number, revoked) => {
    const crl = await x509.X509CrlGenerator.create({
      issuer: signer.certificate.subjectName,
      thisUpdate,
      nextUpdate,
      signingKey: signer.signingKey,
      signingAlgorithm: signer.signingAlgorithm,
      entries: revoked.map((c) => ({ serialNumber: c.serial, revocationDate: toSecond(c.revokedAt!), reason: c.revocationReason ?? 0 })),
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(signer.certificate), new x509.Extension("2.5.29.20", false, crlNumber(number))],
    });
    return { thisUpdate: thisUpdate.getTime(), nextUpdate: nextUpdate.getTime(), der: Buffer.from(crl.rawData) };
  });
}

/** DER INTEGER of a CRL number (RFC 5280 §5.2.3: non-negative, up to 20 octets). */
function crlNumber(n: number): Uint8Array<ArrayBuffer> {
  let hex = n.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = "00" + hex;
  const body = Buffer.from(hex, "hex");
  return Uint8Array.from(Buffer.concat([Buffer.from([0x02, body.length]), body]));
}

/** The newest CRL, publishing one first when there is none or half of its lifetime has passed. */
export async function currentCrl(store: Store, now: number): Promise<Crl> {
  const { authority } = await loadAuthority(store);
  const latest = await store.ca.latestCrl(authority.id);
  if (latest && now < latest.thisUpdate + (latest.nextUpdate - latest.thisUpdate) / 2) return latest;
  return publishCrl(store, now);
}

/**
 * Revokes a certificate with a reason and publishes a new CRL. ERR_NOT_FOUND / ERR_CONFLICT (already
 * revoked). The revocation, the CRL and the audit entry commit together: when the entry cannot be
 * written (ERR_AUDIT_WRITE_FAILED) the certificate is not revoked.
 */
export async function revokeCertificate(store: Store, serial: string, o: { reason: string | number; actor: string; now: number }): Promise<IssuedCert> {
  const s = serial.toLowerCase().replace(/:/g, "");
  const entry = (outcome: "success" | "failure", details: Record<string, unknown>): NewAuditEntry => ({ actor: o.actor, action: "ca.certificate.revoke", subject: s, outcome, details, at: o.now });
  try {
    const reason = revocationReason(o.reason);
    const ca = await loadAuthority(store);
    return await store.transaction(async (tx) => {
      const cert = await tx.ca.getCert(s);
      if (!cert) throw new TpmTrustError("ERR_NOT_FOUND", `no certificate with serial ${s}`);
      if (!(await tx.ca.revokeCert(s, { reason, at: o.now }))) throw new TpmTrustError("ERR_CONFLICT", `certificate ${s} is already revoked`);
      const crl = await signCrl(tx, ca, o.now);
      await tx.audit.append(entry("success", { reason, subject: cert.subject, crlNumber: crl.number }));
      return (await tx.ca.getCert(s))!;
    });
  } catch (e) {
    if (isAuditableFailure(e)) await store.audit.append(entry("failure", { code: e.code, reason: e.message }));
    throw e;
  }
}
