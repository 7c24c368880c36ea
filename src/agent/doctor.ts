/**
 * `tpmtrust agent doctor`: the TPM readiness check operators know from Get-Tpm. Reads what the TPM
 * says about itself (TPM_CAP_TPM_PROPERTIES fixed and variable groups, Part 2 §6.13, TPMA_PERMANENT
 * §8.6) and lists each problem with its fix.
 */
import { readEkCertificates, tpmInfo, type TpmClient, type TpmInfo } from "../tpm/commands/index.js";
import { SRK_HANDLE } from "./keys.js";
import { persistentEks } from "./tpm.js";

// Part 2 §6.13 TPM_PT (PT_VAR group) and §8.6 TPMA_PERMANENT bits
const PT = { PERMANENT: 0x200, HR_PERSISTENT_AVAIL: 0x209, LOCKOUT_COUNTER: 0x20e, MAX_AUTH_FAIL: 0x20f, LOCKOUT_INTERVAL: 0x210, LOCKOUT_RECOVERY: 0x211 } as const;
const PERMANENT = { ownerAuthSet: 1 << 0, endorsementAuthSet: 1 << 1, lockoutAuthSet: 1 << 2, inLockout: 1 << 9 } as const;

export interface Doctor {
  tpm: Pick<TpmInfo, "family" | "manufacturer" | "vendorString" | "firmware" | "revision">;
  /** an owner authorization value is set (the TPM is "owned") */
  owned: boolean;
  endorsementAuthSet: boolean;
  lockout: { inLockout: boolean; counter: number; maxAuthFail: number; intervalSeconds: number; recoverySeconds: number };
  pcrBanks: string[];
  eks: { kind: string; handle?: number; certificateIndex?: number }[];
  srkPresent: boolean;
  persistentHandlesFree: number;
  problems: { problem: string; fix: string }[];
}

export async function doctor(tpm: TpmClient): Promise<Doctor> {
  const info = await tpmInfo(tpm);
  const p = await tpm.getProperties(PT.PERMANENT, 0x12);
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
  const persisted = await persistentEks(tpm);
  const eks = [
    ...certs.map((c) => ({ kind: c.kind, certificateIndex: c.index })),
    ...persisted.filter((e) => !certs.some((c) => c.kind === e.kind)).map((e) => ({ kind: e.kind, handle: e.handle })),
  ];
  const srkPresent = (await tpm.getHandles(SRK_HANDLE)).includes(SRK_HANDLE);
  const out: Doctor = {
    tpm: { family: info.family, manufacturer: info.manufacturer, vendorString: info.vendorString, firmware: info.firmware, revision: info.revision },
    owned: (perm & PERMANENT.ownerAuthSet) !== 0,
    endorsementAuthSet: (perm & PERMANENT.endorsementAuthSet) !== 0,
    lockout,
    pcrBanks: info.pcrBanks.map((b) => b.hash),
    eks,
    srkPresent,
    persistentHandlesFree: get(PT.HR_PERSISTENT_AVAIL),
    problems: [],
  };
  const problem = (problem: string, fix: string) => out.problems.push({ problem, fix });
  if (lockout.inLockout) {
    problem(
      `TPM_RC_LOCKOUT: dictionary-attack lockout (${lockout.counter} of ${lockout.maxAuthFail} failures)`,
      `retry after ${lockout.intervalSeconds} s (one failure is forgiven every LOCKOUT_INTERVAL), or clear it with the lockout authorization: tpm2_dictionarylockout --clear-lockout`,
    );
  } else if (lockout.counter > 0) {
    problem(`${lockout.counter} of ${lockout.maxAuthFail} authorization failures counted towards dictionary-attack lockout`, "find the caller using a wrong authorization value; the counter decreases by one every LOCKOUT_INTERVAL");
  }
  if (!out.pcrBanks.includes("sha256")) problem("no SHA-256 PCR bank is allocated", "allocate it in the firmware setup or with tpm2_pcrallocate sha256:all, then reboot");
  if (certs.length === 0) problem("no EK certificate in NV", "firmware TPMs publish it off-chip; otherwise trust the EK by its hash (tpmtrust trust allowlist add)");
  if (out.endorsementAuthSet) problem("the endorsement hierarchy has an authorization value", "the agent needs the endorsement authorization empty to create EKs from their templates");
  if (!srkPresent) problem(`no SRK at 0x${SRK_HANDLE.toString(16)}`, "the agent creates one from the standard template when needed; persist it with tpm2_createprimary and tpm2_evictcontrol to save time");
  if (out.persistentHandlesFree < 2) problem(`only ${out.persistentHandlesFree} persistent handles free`, "remove unused persistent objects (tpm2_getcap handles-persistent, tpm2_evictcontrol)");
  return out;
}
