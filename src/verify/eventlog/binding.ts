import { hash as oneShot } from "node:crypto";
import { EV } from "./constants.js";
import { bankHash } from "./replay.js";
import type { TcgEvent } from "./types.js";

/**
 * Whether an event's digests are hashes of its own data. Replay trusts digests; interpretation reads
 * data, so a fact taken from data counts only when the data is bound to a verified digest.
 * Each rule lists the preimages firmware is known to hash, in the order tried.
 */
type Preimages = (ev: TcgEvent) => { form: string; bytes: Buffer }[];

const whole: Preimages = (ev) => [{ form: "data", bytes: ev.data }];

/** EV_EFI_VARIABLE_BOOT: PFP 1.05+ hashes UEFI_VARIABLE_DATA; older firmware (and edk2 before 2019) only VariableData. */
const bootVariable: Preimages = (ev) => [
  { form: "data", bytes: ev.data },
  ...(ev.decoded.kind === "efi-variable" ? [{ form: "variable-data-only", bytes: ev.decoded.value }] : []),
];

/** EV_IPL strings: GRUB logs "prefix text\0" and hashes the text, with or without its NUL, or the whole string. */
const iplString: Preimages = (ev) => {
  const d = ev.data;
  const noNul = d.length && d[d.length - 1] === 0 ? d.subarray(0, d.length - 1) : d;
  const out = [
    { form: "data", bytes: d },
    { form: "data-without-nul", bytes: noNul },
  ];
  const sp = d.indexOf(0x20);
  if (sp > 0) {
    // "grub_cmd: x" and "grub_cmd x" both put the hashed text after the first space
    out.push({ form: "text-after-prefix", bytes: d.subarray(sp + 1) }, { form: "text-after-prefix-without-nul", bytes: noNul.subarray(sp + 1) });
  }
  return out;
};

const RULES = new Map<number, Preimages>([
  [EV.SEPARATOR, whole],
  [EV.EFI_ACTION, whole],
  [EV.ACTION, whole],
  [EV.EFI_GPT_EVENT, whole],
  [EV.EFI_VARIABLE_DRIVER_CONFIG, whole],
  [EV.EFI_VARIABLE_AUTHORITY, whole],
  [EV.EFI_VARIABLE_BOOT, bootVariable],
  [EV.EFI_VARIABLE_BOOT2, whole],
  [EV.EVENT_TAG, whole],
  [EV.COMPACT_HASH, whole],
  [EV.S_CRTM_VERSION, whole],
  [EV.NONHOST_INFO, whole],
  [EV.IPL, iplString],
]);

/** Event types whose digest the PFP defines as a hash of the event data (so a mismatch is a fault, not a file hash). */
export const DATA_DIGEST_TYPES: ReadonlySet<number> = new Set([
  EV.SEPARATOR,
  EV.EFI_ACTION,
  EV.EFI_GPT_EVENT,
  EV.EFI_VARIABLE_DRIVER_CONFIG,
  EV.EFI_VARIABLE_AUTHORITY,
  EV.EFI_VARIABLE_BOOT,
  EV.EFI_VARIABLE_BOOT2,
]);

export interface Binding {
  /** The digest of the strongest bank present equals a hash of the data in one of the rule's forms. */
  bound: boolean;
  bank?: string;
  form?: string;
}

/** One collision-resistant bank binds the data (SHA-256 first: hardware-accelerated on most CPUs); SHA-1 only as a last resort. */
const BANK_PREFERENCE = ["sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "sm3_256", "sha1"];

/** Does the latin1 string `s` (a digest as node:crypto's string output, which allocates no buffer) hold the bytes of `b`? */
function sameBytes(s: string, b: Buffer): boolean {
  if (s.length !== b.length) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== b[i]) return false;
  return true;
}

/** Undefined when the event type carries no data-derived digest (e.g. an EFI image's Authenticode hash). */
export function dataBinding(ev: TcgEvent): Binding | undefined {
  const rule = RULES.get(ev.type);
  if (!rule) return undefined;
  const bank = BANK_PREFERENCE.find((b) => ev.digests[b] && bankHash(b));
  if (!bank) return { bound: false };
  const want = ev.digests[bank];
  const hash = bankHash(bank)!;
  for (const { form, bytes } of rule(ev)) {
    if (sameBytes(oneShot(hash, bytes, "binary"), want)) return { bound: true, bank, form };
  }
  return { bound: false, bank };
}
