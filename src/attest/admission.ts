/**
 * Admission by EK certificate chain (vSphere Trust Authority's default trust of TPM CAs): with
 * `admit` set to `ek-cert-chain`, a TPM whose EK certificate chains to a trusted TPM CA is registered
 * at its first AK activation, without `hosts add`, into the default hardware class, policy version
 * v2. Only a certificate for this very EK counts (an EKpub alone, a self-signed certificate or one
 * from another CA is refused with the code EK trust gives it: ERR_EK_CERT_REQUIRED,
 * ERR_EK_NOT_TRUSTED); the EK must be shaped as an EK. The host is named after its EK hash
 * (`ek-<first 16 hex digits>`), so no caller chooses a name. Audited as host.admit either way. The
 * activation that follows still needs ActivateCredential in the TPM holding this EK to bind an AK.
 */
import { isAuditableFailure, isTpmTrustError } from "../errors.js";
import type { Host, Store } from "../store/index.js";
import type { ParsedCertificate } from "../verify/ek/index.js";
import { evaluateEk, requireForPolicy } from "../trust/trust.js";
import { requireEkAttributes } from "./identity.js";
import type { TpmtPublic } from "../tpm/types.js";

export interface AdmissionEvidence {
  ek: { public: TpmtPublic; publicArea: Buffer; name: Buffer };
  ekCerts: readonly Buffer[];
  intermediates: readonly ParsedCertificate[];
}

export async function admitByEkCertChain(store: Store, ev: AdmissionEvidence, o: { hardwareClass: string; now: number }): Promise<Host> {
  const actor = "admission:ek-cert-chain";
  let subject: string | null = null;
  const details: Record<string, unknown> = { ekName: ev.ek.name.toString("hex"), hardwareClass: o.hardwareClass, policyVersion: "v2" };
  try {
    requireEkAttributes(ev.ek.public, "ekPublic");
    const d = await evaluateEk(store, { ekPublic: ev.ek.public, ekCerts: ev.ekCerts, intermediates: ev.intermediates }, new Date(o.now));
    if (d.ekHash) subject = `ek-${d.ekHash.slice(0, 16)}`;
    details.ekHash = d.ekHash ?? null;
    // v2: a certificate for this EK that chains to a trusted root, nothing else
    requireForPolicy(d, "v2");
    const i = d.certificates.findIndex((c) => c.passed);
    details.certificate = d.certificates[i].certificate;
    details.path = d.certificates[i].path ?? [];
    const name = subject!;
    try {
      // the host and its audit entry commit together
      return await store.transaction(async (tx) => {
        const host = await tx.hosts.add({
          name,
          hardwareClass: o.hardwareClass,
          policyVersion: "v2",
          trustMethod: "ek-cert",
          eks: [{ name: ev.ek.name, public: ev.ek.publicArea, cert: Buffer.from(ev.ekCerts[i]) }],
          platform: { admitted: "ek-cert-chain", ...(d.tcg ? { certified: d.tcg } : {}) },
          at: o.now,
        });
        await tx.audit.append({ actor, action: "host.admit", subject: name, outcome: "success", details, at: o.now });
        return host;
      });
    } catch (e) {
      // another activation of the same TPM admitted it first
      const again = isTpmTrustError(e) && e.code === "ERR_CONFLICT" ? await store.hosts.findByEk(ev.ek.name) : undefined;
      if (!again) throw e;
      return again;
    }
  } catch (e) {
    if (isAuditableFailure(e)) await store.audit.append({ actor, action: "host.admit", subject, outcome: "failure", details: { ...details, code: e.code, reason: e.message }, at: o.now });
    throw e;
  }
}
