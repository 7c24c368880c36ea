import { hash, X509Certificate } from "node:crypto";
import { dataBinding } from "./binding.js";
import { EV, GUID, SIPA } from "./constants.js";
import { visitSipa } from "./sipa.js";
import type { EfiVariableEvent, TcgEvent } from "./types.js";

/**
 * What a (verified) event log says, for policy: Secure Boot state and databases, the authorities that
 * verified boot software, the boot chain, and Windows boot facts. Facts read from event data are used
 * only when the data is bound to the event's digests; events whose data is not are named in `warnings`.
 * Pure; pass the events of a VerifiedEventLog to get facts, or a parsed log's events for a preview.
 */
export interface Interpretation {
  secureBoot: SecureBootState;
  bootChain: BootChain;
  windows?: WindowsBoot;
  warnings: { record: number; message: string }[];
}

/**
 * A certificate from a signature database or authority event: the SHA-256 fingerprint is computed
 * at once (policies compare it); names are parsed on first use, since X.509 parsing costs more than
 * the rest of the interpretation together.
 */
export class CertificateSummary {
  readonly sha256: string;
  private parsed?: { subject?: string; issuer?: string; serial?: string; notAfter?: string; error?: string };
  constructor(readonly der: Buffer) {
    this.sha256 = hash("sha256", der, "hex");
  }
  private get info() {
    if (!this.parsed) {
      try {
        const c = new X509Certificate(this.der);
        this.parsed = { subject: c.subject.replace(/\n/g, ", "), issuer: c.issuer.replace(/\n/g, ", "), serial: c.serialNumber, notAfter: c.validTo };
      } catch (e) {
        this.parsed = { error: (e as Error).message };
      }
    }
    return this.parsed;
  }
  get subject(): string | undefined {
    return this.info.subject;
  }
  get issuer(): string | undefined {
    return this.info.issuer;
  }
  toJSON() {
    return { sha256: this.sha256, ...this.info };
  }
}

export interface SignatureDatabase {
  name: string;
  record: number;
  /** SHA-256 of the variable's content, the value to compare. */
  sha256: string;
  certificates: CertificateSummary[];
  /** Counts of hash entries by signature type (e.g. dbx: { sha256: 371 }). */
  hashes: Record<string, number>;
}

export interface Authority {
  record: number;
  variable: string;
  owner?: string;
  certificate?: CertificateSummary;
  sha256: string;
  /** The boot application or driver (record) that followed: the image this authority most likely verified. */
  before?: number;
}

export interface SecureBootState {
  /** SecureBoot variable as measured into PCR 7; undefined when not measured or not bound. */
  enabled?: boolean;
  setupMode?: boolean;
  auditMode?: boolean;
  deployedMode?: boolean;
  databases: SignatureDatabase[];
  authorities: Authority[];
}

export type BootRole = "pre-boot" | "driver" | "shim" | "grub" | "systemd-boot" | "windows-boot-manager" | "bootloader" | "kernel" | "initrd" | "efi-application";

export interface BootImage {
  record: number;
  pcr: number;
  role: BootRole;
  path?: string;
  devicePath?: string;
  digests: Record<string, string>;
}

export interface BootChain {
  /** EV_EFI_BOOT_SERVICES_APPLICATION events of PCR 4, in order. */
  applications: BootImage[];
  /** EV_EFI_BOOT_SERVICES_DRIVER / RUNTIME_SERVICES_DRIVER events (option ROMs and the like). */
  drivers: BootImage[];
  bootloaders: BootImage[];
  /** The kernel as loaded: a PCR 4 EFI image (EFI stub, UKI) and/or a file GRUB measured into PCR 9. */
  kernels: BootImage[];
  initrds: BootImage[];
  cmdline?: { record: number; text: string; source: "grub" | "systemd" };
}

export interface WindowsBoot {
  bootCount?: string;
  codeIntegrity?: boolean;
  testSigning?: boolean;
  kernelDebug?: boolean;
  bootDebugging?: boolean;
  safeMode?: boolean;
  winPE?: boolean;
  dataExecutionPrevention?: string;
  hypervisorLaunchType?: string;
  vsmLaunchType?: string;
  systemRoot?: string;
  bitlocker: { flags: number; methods: string[] }[];
  elam: { keyName?: string; measured?: string; policy?: string }[];
  loadedModules: { path?: string; authenticodeHash?: string; imageValidated?: boolean; publisher?: string; issuer?: string; svn?: number }[];
}

function hexDigests(ev: TcgEvent): Record<string, string> {
  const out: Record<string, string> = {};
  const digests = ev.digests;
  for (const bank in digests) out[bank] = digests[bank].toString("hex");
  return out;
}

type Bound = (ev: TcgEvent) => boolean;

/** Memoised data-binding check; every event whose data is not bound gets one warning. */
function binder(warnings: Interpretation["warnings"]): Bound {
  const seen = new Map<number, boolean>();
  return (ev) => {
    let b = seen.get(ev.index);
    if (b === undefined) {
      b = dataBinding(ev)?.bound ?? false;
      seen.set(ev.index, b);
      if (!b) warnings.push({ record: ev.index, message: `${ev.typeName} data does not hash to its digest: its content is not used` });
    }
    return b;
  };
}

export function interpretEvents(events: readonly TcgEvent[]): Interpretation {
  const warnings: Interpretation["warnings"] = [];
  const bound = binder(warnings);
  const secureBoot = secureBootState(events, bound);
  const bootChain = bootChainOf(events, bound);
  const windows = windowsBoot(events, bound);
  return { secureBoot, bootChain, ...(windows ? { windows } : {}), warnings };
}

/** Only the boot chain (what policies need to name boot images), without Secure Boot or Windows facts. */
export function interpretBootChain(events: readonly TcgEvent[]): BootChain {
  return bootChainOf(events, binder([]));
}

function secureBootState(events: readonly TcgEvent[], bound: Bound): SecureBootState {
  const state: SecureBootState = { databases: [], authorities: [] };
  const flags: Record<string, "enabled" | "setupMode" | "auditMode" | "deployedMode"> = { SecureBoot: "enabled", SetupMode: "setupMode", AuditMode: "auditMode", DeployedMode: "deployedMode" };
  const pendingAuthorities: Authority[] = [];
  for (const ev of events) {
    if ((ev.type === EV.EFI_BOOT_SERVICES_APPLICATION || ev.type === EV.EFI_BOOT_SERVICES_DRIVER) && pendingAuthorities.length) {
      for (const a of pendingAuthorities.splice(0)) a.before = ev.index;
    }
    if (ev.pcr !== 7 || (ev.type !== EV.EFI_VARIABLE_DRIVER_CONFIG && ev.type !== EV.EFI_VARIABLE_AUTHORITY)) continue;
    const d = ev.decoded;
    if (d.kind !== "efi-variable") continue;
    if (ev.type === EV.EFI_VARIABLE_DRIVER_CONFIG && bound(ev)) {
      const flag = flags[d.name];
      if (flag && d.guid === GUID.EFI_GLOBAL_VARIABLE) state[flag] = d.value.length === 1 ? d.value[0] === 1 : false;
      else if (d.parsed.kind === "signature-lists") state.databases.push(database(ev, d));
    } else if (ev.type === EV.EFI_VARIABLE_AUTHORITY && bound(ev)) {
      const sd = d.parsed.kind === "signature-data" ? d.parsed : undefined;
      const a: Authority = {
        record: ev.index,
        variable: d.name,
        ...(sd?.owner ? { owner: sd.owner } : {}),
        ...(sd && sd.data[0] === 0x30 ? { certificate: new CertificateSummary(sd.data) } : {}),
        sha256: hash("sha256", d.value, "hex"),
      };
      state.authorities.push(a);
      pendingAuthorities.push(a);
    }
  }
  return state;
}

function database(ev: TcgEvent, d: EfiVariableEvent): SignatureDatabase {
  const certificates: CertificateSummary[] = [];
  const hashes: Record<string, number> = {};
  if (d.parsed.kind === "signature-lists") {
    for (const list of d.parsed.lists) {
      if (list.type === GUID.EFI_CERT_X509) for (const s of list.signatures) certificates.push(new CertificateSummary(s.data));
      else hashes[list.typeName] = (hashes[list.typeName] ?? 0) + list.count;
    }
  }
  return { name: d.name, record: ev.index, sha256: hash("sha256", d.value, "hex"), certificates, hashes };
}

const LOADER_ROLES: [RegExp, BootRole][] = [
  [/(^|\\)shim[^\\]*\.efi$/i, "shim"],
  [/(^|\\)grub[^\\]*\.efi$/i, "grub"],
  [/(^|\\)systemd-boot[^\\]*\.efi$/i, "systemd-boot"],
  [/(^|\\)bootmgfw\.efi$/i, "windows-boot-manager"],
];
/**
 * What an EV_IPL string is: GRUB's command lines ("grub_cmd", "kernel_cmdline", "module_cmdline"),
 * the files GRUB measures into PCR 9 ("kernel", "initrd", "file"), else its first word (e.g. shim's "MokList").
 */
export function iplKind(pcr: number, text: string): string {
  if (/^(grub_)?kernel_cmdline/.test(text)) return "kernel_cmdline";
  if (pcr === 9) return /initr(d|amfs)/i.test(text) ? "initrd" : /vmlinu[xz]|bzimage|(^|[\s/\\])kernel\b/i.test(text) ? "kernel" : "file";
  const m = /^(grub_cmd|module_cmdline)[: ]/.exec(text);
  return m ? m[1] : text.split(/[\s:]/)[0].slice(0, 40);
}

/** The event types whose data is a UEFI_IMAGE_LOAD_EVENT (what decodes as "image-load"). */
const IMAGE_LOADS: ReadonlySet<number> = new Set([EV.EFI_BOOT_SERVICES_APPLICATION, EV.EFI_BOOT_SERVICES_DRIVER, EV.EFI_RUNTIME_SERVICES_DRIVER]);

function bootChainOf(events: readonly TcgEvent[], bound: Bound): BootChain {
  const chain: BootChain = { applications: [], drivers: [], bootloaders: [], kernels: [], initrds: [] };
  let pcr4Separated = false;
  let loaderSeen = false;
  let grubLinux: string | undefined;
  let grubInitrd: string | undefined;
  for (const ev of events) {
    if (ev.pcr === 4 && ev.type === EV.SEPARATOR) pcr4Separated = true;
    const loadsImage = IMAGE_LOADS.has(ev.type);
    if (!loadsImage && !(ev.type === EV.IPL && (ev.pcr === 8 || ev.pcr === 9 || ev.pcr === 12))) continue;
    const d = ev.decoded;
    if (loadsImage && d.kind === "image-load") {
      const path = d.devicePath.filePath;
      const image: BootImage = { record: ev.index, pcr: ev.pcr, role: "efi-application", ...(path ? { path } : {}), ...(d.devicePath.text ? { devicePath: d.devicePath.text } : {}), digests: hexDigests(ev) };
      if (ev.type !== EV.EFI_BOOT_SERVICES_APPLICATION) {
        chain.drivers.push({ ...image, role: "driver" });
        continue;
      }
      const named = path ? LOADER_ROLES.find(([re]) => re.test(path))?.[1] : undefined;
      if (!pcr4Separated) image.role = "pre-boot";
      else if (named) image.role = named;
      else if (!loaderSeen) image.role = "bootloader";
      else image.role = "kernel";
      if (image.role !== "pre-boot" && image.role !== "kernel" && image.role !== "efi-application") {
        loaderSeen = true;
        chain.bootloaders.push(image);
      }
      chain.applications.push(image);
    } else if (ev.type === EV.IPL && d.kind === "text") {
      if (ev.pcr === 9) {
        // GRUB measures the files it loads into PCR 9; RHEL's names them only "grub_linuxefi Kernel|Initrd"
        const role = iplKind(9, d.text);
        if (role !== "kernel" && role !== "initrd") continue;
        const path = /[/\\]/.test(d.text) ? d.text : (role === "kernel" ? grubLinux : grubInitrd) ?? d.text;
        (role === "kernel" ? chain.kernels : chain.initrds).push({ record: ev.index, pcr: 9, role, path, digests: hexDigests(ev) });
      } else if (ev.pcr === 8 || ev.pcr === 12) {
        const cmd = cmdline(d.text, d.encoding);
        const load = /^grub_cmd:? (linux\w*|initrd\w*) (\S+)/.exec(d.text);
        if ((cmd || load) && !bound(ev)) continue;
        if (cmd) chain.cmdline = { record: ev.index, ...cmd };
        if (load) {
          if (load[1].startsWith("linux")) grubLinux = load[2];
          else grubInitrd = load[2];
        }
      }
    }
  }
  // Only the last non-loader application after a boot loader is the kernel; earlier ones are other EFI tools.
  const kernelApps = chain.applications.filter((a) => a.role === "kernel");
  for (const a of kernelApps.slice(0, -1)) a.role = "efi-application";
  chain.kernels.unshift(...kernelApps.slice(-1));
  return chain;
}

/** GRUB: "kernel_cmdline: <path> args" (upstream) or "grub_kernel_cmdline <path> args" (RHEL); systemd: the UTF-16 command line itself. */
function cmdline(text: string, encoding: "ascii" | "utf16le"): { text: string; source: "grub" | "systemd" } | undefined {
  if (encoding === "utf16le") return { text, source: "systemd" };
  const m = /^(?:grub_)?kernel_cmdline:?\s+(.*)$/s.exec(text);
  if (!m) return undefined;
  const args = m[1].replace(/^(\([^)]*\))?\/\S*\s*/, "");
  return { text: args, source: "grub" };
}

const FVEB_FLAGS: [number, string][] = [
  [0x1, "cached"],
  [0x2, "media"],
  [0x4, "tpm"],
  [0x10, "pin"],
  [0x20, "external"],
  [0x40, "recovery"],
  [0x80, "passphrase"],
  [0x100, "network"],
];

/** Reads of one SIPA item's data, buf[start, end). */
function sipaValue(b: Buffer, s: number, e: number): string {
  if (e - s === 8) return b.readBigUInt64LE(s).toString();
  if (e - s === 4) return String(b.readUInt32LE(s));
  if (e - s === 1) return String(b[s]);
  return b.toString("hex", s, e);
}
function sipaBool(b: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (b[i]) return true;
  return false;
}
function sipaText(b: Buffer, s: number, e: number): string {
  return b.toString("utf16le", s, e).replace(/\0+$/, "");
}

const SIPA_FLAGS: Partial<Record<number, "codeIntegrity" | "testSigning" | "kernelDebug" | "bootDebugging" | "safeMode" | "winPE">> = {
  [SIPA.CODEINTEGRITY]: "codeIntegrity",
  [SIPA.TESTSIGNING]: "testSigning",
  [SIPA.OSKERNELDEBUG]: "kernelDebug",
  [SIPA.BOOTDEBUGGING]: "bootDebugging",
  [SIPA.SAFEMODE]: "safeMode",
  [SIPA.WINPE]: "winPE",
};
const SIPA_VALUES: Partial<Record<number, "bootCount" | "dataExecutionPrevention" | "hypervisorLaunchType" | "vsmLaunchType">> = {
  [SIPA.BOOTCOUNTER]: "bootCount",
  [SIPA.DATAEXECUTIONPREVENTION]: "dataExecutionPrevention",
  [SIPA.HYPERVISOR_LAUNCH_TYPE]: "hypervisorLaunchType",
  [SIPA.VSM_LAUNCH_TYPE]: "vsmLaunchType",
};

/** Windows boot facts from bound EV_EVENT_TAG (SIPA) events; the first value of a fact wins. */
function windowsBoot(events: readonly TcgEvent[], bound: Bound): WindowsBoot | undefined {
  const sipaEvents = events.filter((ev) => ev.type === EV.EVENT_TAG && ev.decoded.kind === "sipa");
  if (!sipaEvents.length) return undefined;
  const w: WindowsBoot = { bitlocker: [], elam: [], loadedModules: [] };
  let elam: WindowsBoot["elam"][number] = {};
  let mod: WindowsBoot["loadedModules"][number] = {};
  for (const ev of sipaEvents) {
    if (!bound(ev)) continue;
    const b = ev.data;
    visitSipa(b, ev.offset, (id, s, e, parent) => {
      const flag = SIPA_FLAGS[id];
      const value = SIPA_VALUES[id];
      if (flag) w[flag] ??= sipaBool(b, s, e);
      else if (value) w[value] ??= sipaValue(b, s, e);
      else if (id === SIPA.SYSTEMROOT) w.systemRoot ??= sipaText(b, s, e);
      else if (id === SIPA.BITLOCKER_UNLOCK) {
        const flags = e - s >= 4 ? b.readUInt32LE(s) : 0;
        w.bitlocker.push({ flags, methods: FVEB_FLAGS.filter(([f]) => flags & f).map(([, n]) => n) });
      } else if (id === SIPA.ELAM_AGGREGATION) w.elam.push((elam = {}));
      else if (id === SIPA.LOADEDMODULE_AGGREGATION) w.loadedModules.push((mod = {}));
      else if (parent === SIPA.ELAM_AGGREGATION) {
        if (id === SIPA.ELAM_KEYNAME) elam.keyName = sipaText(b, s, e);
        else if (id === SIPA.ELAM_MEASURED) elam.measured = b.toString("hex", s, e);
        else if (id === SIPA.ELAM_POLICY) elam.policy = b.toString("hex", s, e);
      } else if (parent === SIPA.LOADEDMODULE_AGGREGATION) {
        if (id === SIPA.FILEPATH) mod.path = sipaText(b, s, e);
        else if (id === SIPA.AUTHENTICODEHASH) mod.authenticodeHash = b.toString("hex", s, e);
        else if (id === SIPA.IMAGEVALIDATED) mod.imageValidated = sipaBool(b, s, e);
        else if (id === SIPA.AUTHORITYPUBLISHER) mod.publisher = sipaText(b, s, e);
        else if (id === SIPA.AUTHORITYISSUER) mod.issuer = sipaText(b, s, e);
        else if (id === SIPA.MODULE_SVN && e - s >= 4) mod.svn = b.readUInt32LE(s);
      }
    });
  }
  return w;
}
