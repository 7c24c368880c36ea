/**
 * Which enrollment admits a registering TPM. An individual enrollment for the registration id
 * wins (as in DPS); its EK must equal the device's exactly. Otherwise an enrollment group admits
 * the device when its EK certificate (sent in `tpm.endorsementKeyCertificate`) certifies this EK and
 * chains to one of the group's CAs, and the registration id is the EK's default one.
 *
 * DPS trust is the enrollment's, not the EK trust store's: an individual enrollment names its EK
 * (the administrator's word, as in Azure DPS), a group its own CAs; the allow-list and the EK roots
 * are not consulted, and trust is withdrawn by disabling or deleting the enrollment or group. An EK
 * revoked in the trust store (`tpmtrust trust ek revoke`) is refused before any enrollment is
 * looked at, at every registration (challenge, first and repeated), with ERR_EK_REVOKED.
 */
import { TpmTrustError } from "../errors.js";
import type { Enrollment, EnrollmentGroup, Store } from "../store/index.js";
import { encodeTpmtPublic } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { EKU_EK_CERTIFICATE, ekHash, loadCertificate, loadCertificates, validateChain, type ParsedCertificate } from "../verify/ek/index.js";
import { requireNotRevoked } from "../trust/trust.js";
import { defaultRegistrationId } from "./registration-id.js";

export type EnrollmentMatch =
  | { kind: "individual"; enrollment: Enrollment }
  | { kind: "group"; group: EnrollmentGroup; certificate: string };

/** Parsed CA certificates by DER, so groups are not re-parsed on every registration. */
const parsed = new Map<string, ParsedCertificate>();
function certs(ders: Buffer[]): ParsedCertificate[] {
  return ders.flatMap((d) => {
    const k = d.toString("base64");
    let c = parsed.get(k);
    if (!c) {
      if (parsed.size > 1000) parsed.clear();
      c = loadCertificates(d)[0];
      parsed.set(k, c);
    }
    return [c];
  });
}

export async function matchEnrollment(store: Store, registrationId: string, ek: TpmtPublic, ekCertificate: Buffer | undefined, at: Date): Promise<EnrollmentMatch> {
  await requireNotRevoked(store, ekHash(ek));
  const individual = await store.provisioning.getEnrollment(registrationId);
  if (individual) {
    if (!individual.ekPublic.equals(encodeTpmtPublic(ek))) throw new TpmTrustError("ERR_KEY_MISMATCH", `the endorsement key is not the one enrolled for ${registrationId}`);
    if (!individual.enabled) throw new TpmTrustError("ERR_DISABLED", `the enrollment for ${registrationId} is disabled`);
    return { kind: "individual", enrollment: individual };
  }
  const groups = await store.provisioning.listGroups();
  if (groups.length === 0 || !ekCertificate) {
    throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment for ${registrationId}${groups.length > 0 ? " (enrollment groups need the EK certificate in tpm.endorsementKeyCertificate)" : ""}`);
  }
  if (registrationId !== defaultRegistrationId(ek)) {
    throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment for ${registrationId} (a TPM registers through an enrollment group under its default registration id, base32 of SHA-256 of its EK)`);
  }
  const leaf = loadCertificate(ekCertificate);
  const reasons: string[] = [];
  let disabled: EnrollmentGroup | undefined;
  // enabled groups first, each in name order
  for (const g of [...groups.filter((x) => x.enabled), ...groups.filter((x) => !x.enabled)]) {
    try {
      validateChain({ leaf, roots: certs(g.caCerts), intermediates: certs(g.intermediates), at, requiredEku: EKU_EK_CERTIFICATE, expectedKey: ek });
    } catch (e) {
      if (!(e instanceof TpmTrustError)) throw e;
      if (e.code === "ERR_KEY_MISMATCH") throw new TpmTrustError("ERR_KEY_MISMATCH", "the EK certificate does not certify the endorsement key");
      reasons.push(`${g.name}: ${e.message}`);
      continue;
    }
    if (g.enabled) return { kind: "group", group: g, certificate: leaf.label };
    disabled ??= g;
  }
  if (disabled) throw new TpmTrustError("ERR_DISABLED", `enrollment group ${disabled.name} is disabled`);
  throw new TpmTrustError("ERR_EK_NOT_TRUSTED", `the EK certificate "${leaf.label}" chains to no enrollment group's CA`, { groups: reasons });
}
