/**
 * Fetching an EK certificate a firmware TPM's maker publishes off-chip (src/crypto/offchip-ek.ts
 * derives the URL), with a cache directory so a host asks once, and checking it certifies the EK:
 * a certificate for another key (a wrong answer, a hostile network) is refused, never cached.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { samePublicKey } from "../crypto/keys.js";
import { certificateFromOffChipAnswer, offChipEkCertUrls, offChipVendor, type OffChipVendor } from "../crypto/offchip-ek.js";
import { TpmTrustError } from "../errors.js";
import type { TpmtPublic } from "../tpm/types.js";
import { certificatePublicKey, ekHash, parseCertificateDer } from "../verify/ek/index.js";

export interface OffChipOptions {
  /** the maker's encoding; default from TPM_PT_MANUFACTURER (INTC, AMD) */
  vendor?: OffChipVendor;
  /** the service's base URL instead of the maker's (a mirror, or a test server) */
  baseUrl?: string;
  /** where fetched certificates are kept, named by the EK's hash */
  cacheDir?: string;
  timeoutMs?: number;
}

export interface OffChipCertificate {
  der: Buffer;
  url: string;
  cached: boolean;
}

/** Answers the certificate if it certifies `ek`, else ERR_EK_CERT_MISMATCH naming `from`. */
export function requireCertifies(der: Buffer, ek: TpmtPublic, from: string): Buffer {
  if (!samePublicKey(certificatePublicKey(parseCertificateDer(der)), ek)) {
    throw new TpmTrustError("ERR_EK_CERT_MISMATCH", `the EK certificate from ${from} is for another key than this EK`, { from });
  }
  return der;
}

/** The vendor whose service publishes this TPM's EK certificates, or ERR_EK_CERT_UNAVAILABLE. */
export function vendorFor(manufacturer: { id: number; name: string }, o: OffChipOptions): OffChipVendor {
  const v = o.vendor ?? offChipVendor(manufacturer.id);
  if (!v) {
    throw new TpmTrustError("ERR_EK_CERT_UNAVAILABLE", `TPMs made by "${manufacturer.name}" have no known off-chip EK certificate service (Intel PTT and AMD fTPM do); supply the certificate with --ek-cert FILE`);
  }
  return v;
}

/** The EK's certificate from the cache, else from the maker's service (then cached). */
export async function fetchEkCertificate(ek: TpmtPublic, vendor: OffChipVendor, o: OffChipOptions = {}): Promise<OffChipCertificate> {
  const urls = offChipEkCertUrls(ek, vendor, o.baseUrl);
  const cacheFile = o.cacheDir ? join(o.cacheDir, `${ekHash(ek)}.der`) : undefined;
  if (cacheFile) {
    let der: Buffer | undefined;
    try {
      der = readFileSync(cacheFile);
    } catch {
      // not cached yet
    }
    if (der) return { der: requireCertifies(der, ek, cacheFile), url: urls[0], cached: true };
  }
  const failures: string[] = [];
  for (const url of urls) {
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs ?? 20_000), redirect: "follow" });
    } catch (e) {
      failures.push(`${url}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`);
      continue;
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (!res.ok) {
      failures.push(`${url}: HTTP ${res.status}`);
      continue;
    }
    const der = requireCertifies(certificateFromOffChipAnswer(body), ek, url);
    if (cacheFile) {
      mkdirSync(o.cacheDir!, { recursive: true, mode: 0o700 });
      writeFileSync(`${cacheFile}.tmp`, der);
      renameSync(`${cacheFile}.tmp`, cacheFile);
    }
    return { der, url, cached: false };
  }
  throw new TpmTrustError("ERR_EK_CERT_UNAVAILABLE", `no EK certificate from the ${vendor === "intel" ? "Intel" : "AMD"} service: ${failures.join("; ")}`, { urls });
}
