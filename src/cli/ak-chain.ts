import type { X509Certificate } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { EKU_AIK_CERTIFICATE, loadCertificates, parseCertificateDer, validateChain } from "../verify/ek/index.js";
import { loadTrustAnchors } from "../trust/trust-files.js";
import { readInput } from "./files.js";

/** Parses --at (ISO-8601); default now. */
export function atOption(at: string | undefined): Date {
  if (at === undefined) return new Date();
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) throw new TpmTrustError("ERR_USAGE", `--at must be an ISO-8601 time, got "${at}"`);
  return d;
}

/**
 * Validates an X.509 AK certificate (`--ak` given as a certificate) to `--roots` through
 * `--ak-chain`, at `--at`; EKU tcg-kp-AIKCertificate (2.23.133.8.3) is required when the EKU
 * extension is present. Without --roots the certificate only supplies the key, and that is said.
 */
export async function verifyAkCertificate(cert: X509Certificate, o: { akChain?: string[]; roots?: string; at?: string }): Promise<Record<string, unknown>> {
  if (!o.roots) {
    if (o.akChain?.length || o.at) throw new TpmTrustError("ERR_USAGE", "--ak-chain and --at need --roots");
    return { chainValidated: false, note: "no --roots given: the certificate was used only for its public key" };
  }
  const leaf = parseCertificateDer(cert.raw);
  const intermediates = (o.akChain ?? []).flatMap((f) => loadCertificates(readInput(f, "--ak-chain")));
  const anchors = loadTrustAnchors(o.roots);
  const at = atOption(o.at);
  const result = validateChain({ leaf, intermediates: [...anchors.intermediates, ...intermediates], roots: anchors.roots, at, requiredEku: EKU_AIK_CERTIFICATE });
  return {
    chainValidated: true,
    at: at.toISOString(),
    path: result.path.map((c) => c.label),
    anchor: result.anchor.label,
    tolerances: result.tolerances,
  };
}
