/**
 * `tpmtrust agent doctor`: the TPM readiness check operators know from Get-Tpm. Reads what the TPM
 * says about itself (TPM_CAP_TPM_PROPERTIES fixed and variable groups, Part 2 §6.13, TPMA_PERMANENT
 * §8.6) and lists each problem with its fix.
 */
import { offChipEkCertUrls, offChipVendor } from "../crypto/offchip-ek.js";
import { TpmTrustError } from "../errors.js";
import {
  createEk,
  type EkKind,
  FlushContext,
  getHandles,
  getProperties,
  NV_ReadPublic,
  readEkCertificates,
  readEkChain,
  type TpmClient,
  tpmInfo,
  type TpmInfo,
} from "../tpm/commands/index.js";
import { RC_MEANINGS } from "../tpm/rc.js";
import { SRK_HANDLE } from "./keys.js";
import { fetchEkCertificate, type OffChipOptions } from "./offchip.js";
import { persistentEks, unsupportedByTpm } from "./tpm.js";

// Part 2 §6.13 TPM_PT (PT_FIXED and PT_VAR groups) and §8.6 TPMA_PERMANENT bits
const PT = {
  NV_INDEX_MAX: 0x117,
  PERMANENT: 0x200,
  HR_NV_INDEX: 0x202,
  HR_TRANSIENT_AVAIL: 0x207,
  HR_PERSISTENT_AVAIL: 0x209,
  NV_COUNTERS_AVAIL: 0x20b,
  LOCKOUT_COUNTER: 0x20e,
  MAX_AUTH_FAIL: 0x20f,
  LOCKOUT_INTERVAL: 0x210,
  LOCKOUT_RECOVERY: 0x211,
} as const;
const PERMANENT = { ownerAuthSet: 1 << 0, endorsementAuthSet: 1 << 1, lockoutAuthSet: 1 << 2, inLockout: 1 << 9 } as const;

export interface Doctor {
  tpm: Pick<TpmInfo, "family" | "manufacturer" | "vendorString" | "firmware" | "revision">;
  /** an owner authorization value is set (the TPM is "owned") */
  owned: boolean;
  endorsementAuthSet: boolean;
  lockout: { inLockout: boolean; counter: number; maxAuthFail: number; intervalSeconds: number; recoverySeconds: number };
  pcrBanks: string[];
  eks: { kind: string; handle?: number; certificateIndex?: number }[];
  /** certificates in the EK certificate chain indices (0x01C00100…) */
  ekChainCertificates: number;
  /** the off-chip EK certificates of a firmware TPM without NV certificates, and whether the maker's service has them */
  offChip: { kind: string; url: string; available: boolean; cached?: boolean; error?: string }[];
  srkPresent: boolean;
  persistentHandlesFree: number;
  transientSlotsFree: number;
  /** TPM 2.0 reports no free NV bytes: the indices defined, their sizes, the largest index allowed, counters left */
  nv: { indices: number; bytesDefined: number; indexMaxBytes: number; countersAvailable: number };
  problems: { problem: string; fix: string }[];
}

export interface DoctorOptions {
  /** check the maker's off-chip EK certificate service when NV holds no EK certificate (default: when the maker has one) */
  offChip?: OffChipOptions | false;
}

const rcProblem = (name: string, detail: string) => ({ problem: `${name}: ${RC_MEANINGS[name].meaning} (${detail})`, fix: RC_MEANINGS[name].fix });

export async function doctor(tpm: TpmClient, o: DoctorOptions = {}): Promise<Doctor> {
  const info = await tpmInfo(tpm);
  const fixed = await getProperties(tpm, PT.NV_INDEX_MAX, 1);
  const p = await getProperties(tpm, PT.PERMANENT, 0x12);
  const get = (pt: number) => p.get(pt) ?? 0;
  const perm = get(PT.PERMANENT);
  const lockout = {
    inLockout: (perm & PERMANENT.inLockout) !== 0,
    counter: get(PT.LOCKOUT_COUNTER),
    maxAuthFail: get(PT.MAX_AUTH_FAIL),
    intervalSeconds: get(PT.LOCKOUT_INTERVAL),
    recoverySeconds: get(PT.LOCKOUT_RECOVERY),
  };
  const certs = await readEkCertificates(tpm);
  const chain = await readEkChain(tpm);
  const persisted = await persistentEks(tpm);
  const eks = [
    ...certs.map((c) => ({ kind: c.kind, certificateIndex: c.index })),
    ...persisted.filter((e) => !certs.some((c) => c.kind === e.kind)).map((e) => ({ kind: e.kind, handle: e.handle })),
  ];
  const srkPresent = (await getHandles(tpm, SRK_HANDLE)).includes(SRK_HANDLE);
  const nvIndices = (await getHandles(tpm, 0x01000000)).filter((h) => h >>> 24 === 0x01);
  let bytesDefined = 0;
  for (const h of nvIndices) bytesDefined += (await tpm.run(NV_ReadPublic, { nvIndex: h })).nvPublic.dataSize;
  const out: Doctor = {
    tpm: { family: info.family, manufacturer: info.manufacturer, vendorString: info.vendorString, firmware: info.firmware, revision: info.revision },
    owned: (perm & PERMANENT.ownerAuthSet) !== 0,
    endorsementAuthSet: (perm & PERMANENT.endorsementAuthSet) !== 0,
    lockout,
    pcrBanks: info.pcrBanks.map((b) => b.hash),
    eks,
    ekChainCertificates: chain.reduce((n, c) => n + c.certificates.length, 0),
    offChip: [],
    srkPresent,
    persistentHandlesFree: get(PT.HR_PERSISTENT_AVAIL),
    transientSlotsFree: get(PT.HR_TRANSIENT_AVAIL),
    nv: { indices: get(PT.HR_NV_INDEX) || nvIndices.length, bytesDefined, indexMaxBytes: fixed.get(PT.NV_INDEX_MAX) ?? 0, countersAvailable: get(PT.NV_COUNTERS_AVAIL) },
    problems: [],
  };
  const problem = (problem: string, fix: string) => out.problems.push({ problem, fix });
  if (lockout.inLockout) {
    const p = rcProblem("TPM_RC_LOCKOUT", `${lockout.counter} of ${lockout.maxAuthFail} failures`);
    problem(p.problem, `retry after ${lockout.intervalSeconds} s (one failure is forgiven every ${lockout.intervalSeconds} s), or clear it with the lockout authorization: tpm2_dictionarylockout --clear-lockout -p LOCKOUT_AUTH`);
  } else if (lockout.counter > 0) {
    problem(`${lockout.counter} of ${lockout.maxAuthFail} authorization failures counted towards dictionary-attack lockout (TPM_RC_AUTH_FAIL)`, "find the caller using a wrong authorization value; the counter decreases by one every LOCKOUT_INTERVAL");
  }
  if (!out.pcrBanks.includes("sha256")) problem("no SHA-256 PCR bank is allocated", "allocate it in the firmware setup or with tpm2_pcrallocate sha256:all, then reboot");
  if (certs.length === 0) await checkOffChip(tpm, info, o, out);
  if (out.endorsementAuthSet) problem("the endorsement hierarchy has an authorization value", "the agent needs the endorsement authorization empty to create EKs from their templates");
  if (!srkPresent) problem(`no SRK at 0x${SRK_HANDLE.toString(16)}`, "the agent creates one from the standard template when needed; persist it with tpm2_createprimary and tpm2_evictcontrol to save time");
  if (out.persistentHandlesFree < 2) problem(`only ${out.persistentHandlesFree} persistent handles free`, "remove unused persistent objects (tpm2_getcap handles-persistent, tpm2_evictcontrol)");
  if (out.transientSlotsFree < 3) problem(`only ${out.transientSlotsFree} transient object slots free (TPM_RC_OBJECT_MEMORY ahead)`, RC_MEANINGS.TPM_RC_OBJECT_MEMORY.fix);
  return out;
}

/**
 * No EK certificate in NV: a firmware TPM's maker may publish it. Makes the RSA and ECC EKs and
 * asks the maker's service (the cache first) for each; a problem when none is there.
 */
async function checkOffChip(tpm: TpmClient, info: TpmInfo, o: DoctorOptions, out: Doctor): Promise<void> {
  const vendor = o.offChip === false ? undefined : (o.offChip?.vendor ?? offChipVendor(info.manufacturerId));
  if (!vendor || o.offChip === false) {
    out.problems.push({ problem: "no EK certificate in NV", fix: "firmware TPMs publish it off-chip (agent identify --fetch-ek-cert); otherwise supply it (--ek-cert FILE) or trust the EK by its hash (tpmtrust trust allowlist add)" });
    return;
  }
  for (const kind of ["rsa2048", "ecc-p256"] as EkKind[]) {
    let ek;
    try {
      ek = await createEk(tpm, kind);
    } catch (e) {
      if (unsupportedByTpm(e)) continue;
      throw e;
    }
    await tpm.run(FlushContext, { flushHandle: ek.handle }).catch(() => undefined);
    try {
      const c = await fetchEkCertificate(ek.public, vendor, o.offChip || {});
      out.offChip.push({ kind, url: c.url, available: true, cached: c.cached });
    } catch (e) {
      if (!(e instanceof TpmTrustError) || !/^ERR_(EK_CERT_UNAVAILABLE|EK_CERT_MISMATCH|PARSE_CERT)$/.test(e.code)) throw e;
      out.offChip.push({ kind, url: offChipEkCertUrls(ek.public, vendor, o.offChip?.baseUrl)[0], available: false, error: `${e.code}: ${e.message}` });
    }
  }
  if (!out.offChip.some((c) => c.available)) {
    out.problems.push({
      problem: `no EK certificate in NV, and none from the ${vendor === "intel" ? "Intel" : "AMD"} EK certificate service (${out.offChip.map((c) => c.error).join("; ")})`,
      fix: "check this host's internet access to the maker's service (a proxy, a firewall), or fetch the certificate elsewhere and give it to agent identify --ek-cert FILE",
    });
  }
}
