import { TpmTrustError } from "../errors.js";

/** Response code names, TPM 2.0 Part 2 §6.6.3 (format-1 codes are listed without their N/P bits). */
const RC_NAMES: Record<number, string> = {
  0x000: "TPM_RC_SUCCESS",
  0x01e: "TPM_RC_BAD_TAG",
  // format 0, RC_VER1 = 0x100
  0x100: "TPM_RC_INITIALIZE",
  0x101: "TPM_RC_FAILURE",
  0x103: "TPM_RC_SEQUENCE",
  0x10b: "TPM_RC_PRIVATE",
  0x119: "TPM_RC_HMAC",
  0x120: "TPM_RC_DISABLED",
  0x121: "TPM_RC_EXCLUSIVE",
  0x124: "TPM_RC_AUTH_TYPE",
  0x125: "TPM_RC_AUTH_MISSING",
  0x126: "TPM_RC_POLICY",
  0x127: "TPM_RC_PCR",
  0x128: "TPM_RC_PCR_CHANGED",
  0x12d: "TPM_RC_UPGRADE",
  0x12e: "TPM_RC_TOO_MANY_CONTEXTS",
  0x12f: "TPM_RC_AUTH_UNAVAILABLE",
  0x130: "TPM_RC_REBOOT",
  0x131: "TPM_RC_UNBALANCED",
  0x142: "TPM_RC_COMMAND_SIZE",
  0x143: "TPM_RC_COMMAND_CODE",
  0x144: "TPM_RC_AUTHSIZE",
  0x145: "TPM_RC_AUTH_CONTEXT",
  0x146: "TPM_RC_NV_RANGE",
  0x147: "TPM_RC_NV_SIZE",
  0x148: "TPM_RC_NV_LOCKED",
  0x149: "TPM_RC_NV_AUTHORIZATION",
  0x14a: "TPM_RC_NV_UNINITIALIZED",
  0x14b: "TPM_RC_NV_SPACE",
  0x14c: "TPM_RC_NV_DEFINED",
  0x150: "TPM_RC_BAD_CONTEXT",
  0x151: "TPM_RC_CPHASH",
  0x152: "TPM_RC_PARENT",
  0x153: "TPM_RC_NEEDS_TEST",
  0x154: "TPM_RC_NO_RESULT",
  0x155: "TPM_RC_SENSITIVE",
  // format 1, RC_FMT1 = 0x080
  0x081: "TPM_RC_ASYMMETRIC",
  0x082: "TPM_RC_ATTRIBUTES",
  0x083: "TPM_RC_HASH",
  0x084: "TPM_RC_VALUE",
  0x085: "TPM_RC_HIERARCHY",
  0x087: "TPM_RC_KEY_SIZE",
  0x088: "TPM_RC_MGF",
  0x089: "TPM_RC_MODE",
  0x08a: "TPM_RC_TYPE",
  0x08b: "TPM_RC_HANDLE",
  0x08c: "TPM_RC_KDF",
  0x08d: "TPM_RC_RANGE",
  0x08e: "TPM_RC_AUTH_FAIL",
  0x08f: "TPM_RC_NONCE",
  0x090: "TPM_RC_PP",
  0x092: "TPM_RC_SCHEME",
  0x095: "TPM_RC_SIZE",
  0x096: "TPM_RC_SYMMETRIC",
  0x097: "TPM_RC_TAG",
  0x098: "TPM_RC_SELECTOR",
  0x09a: "TPM_RC_INSUFFICIENT",
  0x09b: "TPM_RC_SIGNATURE",
  0x09c: "TPM_RC_KEY",
  0x09d: "TPM_RC_POLICY_FAIL",
  0x09f: "TPM_RC_INTEGRITY",
  0x0a0: "TPM_RC_TICKET",
  0x0a1: "TPM_RC_RESERVED_BITS",
  0x0a2: "TPM_RC_BAD_AUTH",
  0x0a3: "TPM_RC_EXPIRED",
  0x0a4: "TPM_RC_POLICY_CC",
  0x0a5: "TPM_RC_BINDING",
  0x0a6: "TPM_RC_CURVE",
  0x0a7: "TPM_RC_ECC_POINT",
  // format 0 warnings, RC_WARN = 0x900
  0x901: "TPM_RC_CONTEXT_GAP",
  0x902: "TPM_RC_OBJECT_MEMORY",
  0x903: "TPM_RC_SESSION_MEMORY",
  0x904: "TPM_RC_MEMORY",
  0x905: "TPM_RC_SESSION_HANDLES",
  0x906: "TPM_RC_OBJECT_HANDLES",
  0x907: "TPM_RC_LOCALITY",
  0x908: "TPM_RC_YIELDED",
  0x909: "TPM_RC_CANCELED",
  0x90a: "TPM_RC_TESTING",
  0x920: "TPM_RC_NV_RATE",
  0x921: "TPM_RC_LOCKOUT",
  0x922: "TPM_RC_RETRY",
  0x923: "TPM_RC_NV_UNAVAILABLE",
};

export interface DecodedRc {
  rc: number;
  /** The base code with handle/parameter/session bits removed, e.g. 0x09b. */
  code: number;
  name: string;
  format: 0 | 1;
  warning: boolean;
  /** Which handle, parameter or session (1-based) the error refers to, for format-1 codes. */
  subject?: { kind: "handle" | "parameter" | "session"; index: number };
}

/** Decodes a TPM_RC per Part 2 §6.6.2 (format 0: bit 7 clear; format 1: bit 7 set, bits 6/11 say P/S). */
export function decodeRc(rc: number): DecodedRc {
  rc >>>= 0;
  if (rc & 0x80) {
    const code = 0x80 | (rc & 0x3f);
    const n = (rc >> 8) & 0xf;
    let subject: DecodedRc["subject"];
    if (rc & 0x40) subject = { kind: "parameter", index: n };
    else if (n & 0x8) subject = { kind: "session", index: n & 0x7 };
    else if (n) subject = { kind: "handle", index: n };
    return { rc, code, name: RC_NAMES[code] ?? `TPM_RC_FMT1(0x${code.toString(16)})`, format: 1, warning: false, ...(subject ? { subject } : {}) };
  }
  const code = rc & 0xfff;
  const warning = (rc & 0x900) === 0x900;
  const name = RC_NAMES[code] ?? (rc & 0x400 ? `TPM_RC_VENDOR(0x${code.toString(16)})` : `TPM_RC(0x${code.toString(16)})`);
  return { rc, code, name, format: 0, warning };
}

/** A TPM answered with a non-zero response code. */
export class TpmRcError extends TpmTrustError {
  readonly rc: DecodedRc;
  constructor(rc: number, command?: string) {
    const d = decodeRc(rc);
    const where = d.subject ? ` (${d.subject.kind} ${d.subject.index})` : "";
    super("ERR_TPM_RC", `${command ? command + ": " : ""}${d.name}${where} rc=0x${rc.toString(16).padStart(3, "0")}`, {
      rc,
      name: d.name,
      ...(command ? { command } : {}),
      ...(d.subject ? { subject: d.subject } : {}),
    });
    this.rc = d;
  }
}

/**
 * What each response code means and what to do about it (TPM 2.0 Part 2 §6.6.3 descriptions,
 * said for an operator), keyed by name. `decodeRc` names every code; this says why.
 */
export const RC_MEANINGS: Record<string, { meaning: string; fix: string }> = {
  TPM_RC_SUCCESS: { meaning: "success", fix: "nothing to do" },
  TPM_RC_BAD_TAG: { meaning: "the command's tag is not one a TPM 2.0 knows (a TPM 1.2 may be answering)", fix: "check that the device is a TPM 2.0 (tpmtrust agent doctor); a TPM 1.2 must be switched to 2.0 in the firmware setup" },
  TPM_RC_INITIALIZE: { meaning: "the TPM has not been started (TPM2_Startup not run)", fix: "the firmware normally starts the TPM; for a simulator run tpm2_startup -c" },
  TPM_RC_FAILURE: { meaning: "the TPM is in failure mode and answers only GetTestResult and GetCapability", fix: "reboot the machine; if it persists, update the TPM firmware or replace the TPM" },
  TPM_RC_SEQUENCE: { meaning: "an improper use of a hash or HMAC sequence", fix: "a bug in the caller: report it with the command that failed" },
  TPM_RC_PRIVATE: { meaning: "a private-key object's sensitive area is not valid for this TPM", fix: "recreate the key on this TPM" },
  TPM_RC_HMAC: { meaning: "an HMAC or digest check failed inside the TPM", fix: "retry; a persistent failure means corrupted blobs: recreate the object" },
  TPM_RC_DISABLED: { meaning: "the command is disabled (the hierarchy or the TPM function is turned off)", fix: "enable the hierarchy (firmware setup, or tpm2_hierarchycontrol)" },
  TPM_RC_EXCLUSIVE: { meaning: "the audit session is not the exclusive one any more", fix: "restart the audit sequence" },
  TPM_RC_AUTH_TYPE: { meaning: "this authorization handle takes no such authorization type", fix: "use a password or HMAC session as the object requires" },
  TPM_RC_AUTH_MISSING: { meaning: "the command needs an authorization session that was not given", fix: "a bug in the caller: report it with the command that failed" },
  TPM_RC_POLICY: { meaning: "the policy session does not satisfy the object's policy", fix: "the policy's conditions (PCRs, secrets, command code) do not hold: check them" },
  TPM_RC_PCR: { meaning: "the PCR check of a policy failed", fix: "the PCR values differ from those the policy was made for (firmware or boot change): reseal to the new values" },
  TPM_RC_PCR_CHANGED: { meaning: "PCRs changed while a policy session was running", fix: "retry the operation" },
  TPM_RC_UPGRADE: { meaning: "the TPM is in field-upgrade mode", fix: "finish or cancel the firmware update, then reboot" },
  TPM_RC_TOO_MANY_CONTEXTS: { meaning: "the TPM's context counter would roll over", fix: "reboot the machine" },
  TPM_RC_AUTH_UNAVAILABLE: { meaning: "the object's authValue or authPolicy is not available to this command", fix: "use the authorization the object accepts (e.g. a policy session for an EK)" },
  TPM_RC_REBOOT: { meaning: "the TPM needs a reboot (TPM2_Startup(CLEAR) after an update)", fix: "reboot the machine" },
  TPM_RC_UNBALANCED: { meaning: "the hash algorithms of the command do not balance (e.g. a weak nameAlg with a strong key)", fix: "use matching algorithms in the template" },
  TPM_RC_COMMAND_SIZE: { meaning: "the command's size field does not match its bytes", fix: "a bug in the caller or a bus fault: report it" },
  TPM_RC_COMMAND_CODE: { meaning: "the TPM does not implement this command", fix: "update the TPM firmware, or use a TPM that has the command" },
  TPM_RC_AUTHSIZE: { meaning: "the authorization area's size is wrong", fix: "a bug in the caller: report it" },
  TPM_RC_AUTH_CONTEXT: { meaning: "authorization given to a command that takes none", fix: "a bug in the caller: report it" },
  TPM_RC_NV_RANGE: { meaning: "an NV offset or size is out of the index's range", fix: "read or write within the index's size (tpm2_nvreadpublic)" },
  TPM_RC_NV_SIZE: { meaning: "the NV index is larger than this TPM allows", fix: "use a smaller index (TPM_PT_NV_INDEX_MAX)" },
  TPM_RC_NV_LOCKED: { meaning: "the NV index is write- or read-locked", fix: "locks clear at the next boot (or never, for WRITEDEFINE): use another index" },
  TPM_RC_NV_AUTHORIZATION: { meaning: "the NV index does not take this authorization (owner, platform or its own)", fix: "authorize with the hierarchy or value the index's attributes name" },
  TPM_RC_NV_UNINITIALIZED: { meaning: "the NV index was never written", fix: "write it first, or treat it as absent" },
  TPM_RC_NV_SPACE: { meaning: "the TPM's NV memory is full", fix: "undefine unused NV indices and evict unused persistent objects (agent doctor lists them)" },
  TPM_RC_NV_DEFINED: { meaning: "an NV index with this handle already exists", fix: "use another handle, or undefine the old index" },
  TPM_RC_BAD_CONTEXT: { meaning: "a saved context could not be loaded", fix: "the context is from another boot or TPM: recreate the object" },
  TPM_RC_CPHASH: { meaning: "the command does not match the session's cpHash", fix: "the policy was made for another command: rebuild it" },
  TPM_RC_PARENT: { meaning: "the parent is not a storage key (or of the wrong type)", fix: "load the object under a restricted decryption key such as the SRK" },
  TPM_RC_NEEDS_TEST: { meaning: "an algorithm needs its self-test first", fix: "run tpm2_selftest, then retry" },
  TPM_RC_NO_RESULT: { meaning: "the TPM could not complete the command (e.g. no point on the curve)", fix: "retry with other input" },
  TPM_RC_SENSITIVE: { meaning: "the object's sensitive area could not be unmarshalled", fix: "the blob does not belong to this parent or TPM: recreate the object" },
  TPM_RC_ASYMMETRIC: { meaning: "the asymmetric algorithm is not supported or not right here", fix: "use an algorithm the TPM has (tpm2_getcap algorithms)" },
  TPM_RC_ATTRIBUTES: { meaning: "inconsistent object or NV attributes", fix: "fix the template's attributes" },
  TPM_RC_HASH: { meaning: "the hash algorithm is not supported or not allowed here", fix: "use SHA-256 or another hash the TPM has (tpm2_getcap algorithms)" },
  TPM_RC_VALUE: { meaning: "a value is out of range or not right for its context", fix: "check the command's parameters" },
  TPM_RC_HIERARCHY: { meaning: "the hierarchy is disabled or not allowed here", fix: "enable it (firmware setup, tpm2_hierarchycontrol) or use another" },
  TPM_RC_KEY_SIZE: { meaning: "the TPM does not support this key size", fix: "use a size the TPM has (e.g. RSA-2048)" },
  TPM_RC_MGF: { meaning: "the mask generation function is not supported", fix: "use MGF1 with a supported hash" },
  TPM_RC_MODE: { meaning: "the symmetric mode is not supported", fix: "use CFB for parameter encryption and storage keys" },
  TPM_RC_TYPE: { meaning: "the object or key type is not right here", fix: "check the template's type" },
  TPM_RC_HANDLE: { meaning: "the handle is not correct for this use (or the object is gone)", fix: "check that the object is loaded or persisted (tpm2_getcap handles-persistent)" },
  TPM_RC_KDF: { meaning: "the key derivation function is not supported", fix: "use KDF1_SP800_108 / the TPM's default" },
  TPM_RC_RANGE: { meaning: "a value is out of its allowed range", fix: "check the command's parameters" },
  TPM_RC_AUTH_FAIL: {
    meaning: "wrong authorization value; the failure counts towards dictionary-attack lockout",
    fix: "use the right password or HMAC key; too many failures lock the TPM (agent doctor shows the counter)",
  },
  TPM_RC_NONCE: { meaning: "the session nonce is wrong", fix: "restart the session" },
  TPM_RC_PP: { meaning: "physical presence is required", fix: "confirm at the machine's console (firmware setup)" },
  TPM_RC_SCHEME: { meaning: "the signing or encryption scheme is not supported or not right", fix: "use a scheme the key allows" },
  TPM_RC_SIZE: { meaning: "a structure's size is wrong", fix: "a bug in the caller or corrupted input: report it" },
  TPM_RC_SYMMETRIC: { meaning: "the symmetric algorithm is not supported or wrong", fix: "use AES-128-CFB (every TPM has it)" },
  TPM_RC_TAG: { meaning: "a structure tag is wrong", fix: "a bug in the caller or corrupted input: report it" },
  TPM_RC_SELECTOR: { meaning: "a union selector is wrong", fix: "a bug in the caller or corrupted input: report it" },
  TPM_RC_INSUFFICIENT: { meaning: "the input was too short", fix: "a bug in the caller or corrupted input: report it" },
  TPM_RC_SIGNATURE: { meaning: "the signature does not verify", fix: "the data, key or signature does not match" },
  TPM_RC_KEY: { meaning: "the key is not valid for this command", fix: "use a key with the right attributes (sign, decrypt, restricted)" },
  TPM_RC_POLICY_FAIL: { meaning: "a policy check failed", fix: "the policy's conditions do not hold: check them" },
  TPM_RC_INTEGRITY: { meaning: "an integrity check of a blob failed (wrong parent, TPM or tampering)", fix: "the blob belongs to another parent or TPM, or was altered: recreate it" },
  TPM_RC_TICKET: { meaning: "the ticket is not valid", fix: "get a fresh ticket from the TPM" },
  TPM_RC_RESERVED_BITS: { meaning: "reserved bits are set", fix: "a bug in the caller: report it" },
  TPM_RC_BAD_AUTH: { meaning: "the authorization failed and is not counted for lockout (the entity is noDA)", fix: "use the right password or HMAC key" },
  TPM_RC_EXPIRED: { meaning: "the policy session has expired", fix: "start a new session and retry" },
  TPM_RC_POLICY_CC: { meaning: "the policy was made for another command code", fix: "rebuild the policy for this command" },
  TPM_RC_BINDING: { meaning: "the public and sensitive areas are not bound", fix: "the blob is inconsistent: recreate the object" },
  TPM_RC_CURVE: { meaning: "the TPM does not support this ECC curve", fix: "use NIST P-256 (every TPM 2.0 has it)" },
  TPM_RC_ECC_POINT: { meaning: "the point is not on the curve", fix: "corrupted input: check the key" },
  TPM_RC_CONTEXT_GAP: { meaning: "the gap between saved session contexts is too large", fix: "flush old sessions (tpm2_flushcontext -s) and retry" },
  TPM_RC_OBJECT_MEMORY: { meaning: "no room for another loaded object", fix: "flush transient objects (tpm2_flushcontext -t) or use the resource manager (/dev/tpmrm0)" },
  TPM_RC_SESSION_MEMORY: { meaning: "no room for another session", fix: "flush sessions (tpm2_flushcontext -l) or use the resource manager (/dev/tpmrm0)" },
  TPM_RC_MEMORY: { meaning: "out of memory (objects or sessions)", fix: "flush what is loaded, or use the resource manager (/dev/tpmrm0)" },
  TPM_RC_SESSION_HANDLES: { meaning: "no session handle is free", fix: "flush sessions (tpm2_flushcontext -l -s)" },
  TPM_RC_OBJECT_HANDLES: { meaning: "no object handle is free", fix: "flush transient objects (tpm2_flushcontext -t)" },
  TPM_RC_LOCALITY: { meaning: "the command is not allowed in this locality", fix: "run it from the locality the object's policy needs" },
  TPM_RC_YIELDED: { meaning: "the TPM suspended the command", fix: "retry" },
  TPM_RC_CANCELED: { meaning: "the command was cancelled", fix: "retry" },
  TPM_RC_TESTING: { meaning: "the TPM is running self-tests", fix: "retry in a moment" },
  TPM_RC_NV_RATE: { meaning: "NV writes are rate-limited to protect the memory", fix: "wait and retry; write NV less often" },
  TPM_RC_LOCKOUT: {
    meaning: "dictionary-attack lockout: authorizations with DA protection are refused",
    fix: "retry after the lockout recovery time (one failure is forgiven every lockout interval; agent doctor shows both), or clear it with the lockout authorization: tpm2_dictionarylockout --clear-lockout -p LOCKOUT_AUTH",
  },
  TPM_RC_RETRY: { meaning: "the TPM was busy and asks to send the command again", fix: "retry" },
  TPM_RC_NV_UNAVAILABLE: { meaning: "NV memory is not available right now", fix: "retry later" },
};

/** A response code by name with its meaning and fix (vendor and unknown codes: the name only). */
export function describeRc(rc: number): DecodedRc & { meaning?: string; fix?: string } {
  const d = decodeRc(rc);
  return { ...d, ...RC_MEANINGS[d.name] };
}
