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
