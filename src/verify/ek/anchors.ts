/**
 * Trust anchors for EK certificates: roots (AD CS "EKROOT") and intermediates ("EKCA"), as parsed
 * certificates. Pure: reading files is left to callers.
 */
import type { ParsedCertificate } from "./certificate.js";
import { isSelfSigned } from "./chain.js";

export type AnchorRole = "root" | "intermediate";

export interface TrustAnchors {
  roots: ParsedCertificate[];
  intermediates: ParsedCertificate[];
}

/**
 * The role a vendor bundle's folder names give a file, e.g. `IFX/RootCA/x.cer` or
 * `Intel/IntermediateCA/y.cer` in the extracted Microsoft TrustedTpm.cab; undefined when no folder says.
 * The innermost folder that says wins.
 */
export function roleFromPath(relativePath: string): AnchorRole | undefined {
  const folders = relativePath.split(/[\\/]+/).slice(0, -1).reverse();
  for (const f of folders) {
    const n = f.toLowerCase().replace(/[^a-z]/g, "");
    if (/^(trusted)?roots?(cas?|certs?|certificates?)?$/.test(n)) return "root";
    if (/^intermediates?(cas?|certs?|certificates?)?$/.test(n) || n === "ekca" || n === "subca" || n === "issuingca") return "intermediate";
  }
  return undefined;
}

/**
 * Sorts certificates into roots and intermediates: a given role wins; otherwise self-signed
 * certificates are roots and all others intermediates. Duplicates (same DER) are dropped; a
 * certificate named a root anywhere stays a root.
 */
export function classifyCertificates(entries: readonly { cert: ParsedCertificate; role?: AnchorRole }[]): TrustAnchors {
  const roots: ParsedCertificate[] = [];
  const intermediates: ParsedCertificate[] = [];
  for (const { cert, role } of entries) {
    const r = role ?? (isSelfSigned(cert) ? "root" : "intermediate");
    if (r === "root") {
      if (roots.some((c) => c.der.equals(cert.der))) continue;
      const i = intermediates.findIndex((c) => c.der.equals(cert.der));
      if (i >= 0) intermediates.splice(i, 1);
      roots.push(cert);
    } else if (!roots.some((c) => c.der.equals(cert.der)) && !intermediates.some((c) => c.der.equals(cert.der))) {
      intermediates.push(cert);
    }
  }
  return { roots, intermediates };
}
