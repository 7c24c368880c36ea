import { dataBinding, EV, iplKind, type BootRole, type TcgEvent } from "../verify/eventlog/index.js";

/**
 * How policies name events: a key that lines up "the same" event across hosts (type plus what the
 * event is about: variable name, action string, GRUB command kind, SIPA container), a description for
 * people, and what a difference in it means. Keys and descriptions read event data, which may be
 * unbound; pass/fail always rests on digests.
 */
export function eventKey(ev: TcgEvent): string {
  const d = ev.decoded;
  switch (d.kind) {
    case "efi-variable":
      return `${ev.typeName}:${d.guid}:${d.name}`;
    case "text":
      if (ev.type === EV.EFI_ACTION || ev.type === EV.ACTION) return `${ev.typeName}:${d.text}`;
      if (ev.type === EV.IPL) return `${ev.typeName}:${iplKind(ev.pcr, d.text)}`;
      return ev.typeName;
    case "sipa":
      return `${ev.typeName}:${d.items[0]?.name ?? "empty"}`;
    default:
      return ev.typeName;
  }
}

const clip = (s: string, n = 100) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function describeEvent(ev: TcgEvent): string {
  const d = ev.decoded;
  switch (d.kind) {
    case "efi-variable":
      if (ev.type === EV.EFI_VARIABLE_AUTHORITY) return `authority from ${d.name}`;
      return `${ev.type === EV.EFI_VARIABLE_DRIVER_CONFIG ? "Secure Boot variable" : "boot variable"} ${d.name}`;
    case "image-load":
      return `${ev.type === EV.EFI_BOOT_SERVICES_APPLICATION ? "EFI application" : "EFI driver"} ${d.devicePath.filePath ?? (d.devicePath.text || "(no device path)")}`;
    case "text":
      return `"${clip(d.text)}"`;
    case "separator":
      return d.error ? "separator (error)" : "separator";
    case "sipa":
      return `Windows boot configuration (${d.items.map((i) => i.name).slice(0, 3).join(", ")})`;
    case "firmware-blob":
      return `firmware blob ${d.description ? `"${d.description}" ` : ""}at ${d.base}, ${d.length} bytes`;
    case "gpt":
      return `GPT of disk ${d.diskGuid}, ${d.partitions.length} partitions`;
    case "spec-id":
      return `${d.signature} (${d.algorithms.map((a) => a.bank).join(", ")})`;
    case "startup-locality":
      return `StartupLocality ${d.locality}`;
    case "sp800-155":
      return [d.signature, d.platformManufacturer, d.platformModel, d.firmwareVersion && `firmware ${d.firmwareVersion}`].filter(Boolean).join(" ");
    case "compact-hash":
      return d.value !== undefined ? `value 0x${d.value.toString(16)}` : ev.typeName;
    case "no-action":
      return d.signature ?? ev.typeName;
    case "undecodable":
      return `undecodable data (${d.error})`;
    default:
      return ev.typeName;
  }
}

const LOADER_ROLES: ReadonlySet<BootRole> = new Set(["shim", "grub", "systemd-boot", "windows-boot-manager", "bootloader"]);

/** What it means that this event's digest differs from the expected one. `role` comes from the boot chain interpretation. */
export function meaningOfChange(ev: TcgEvent, role?: BootRole): string {
  const d = ev.decoded;
  switch (ev.type) {
    case EV.EFI_VARIABLE_DRIVER_CONFIG: {
      if (d.kind !== "efi-variable") return "Secure Boot configuration changed";
      if (d.name === "SecureBoot") {
        const bound = dataBinding(ev)?.bound;
        if (bound && d.value.length <= 1) return d.value[0] === 1 ? "Secure Boot enabled" : "Secure Boot disabled";
        return "SecureBoot variable changed";
      }
      return `${d.name} changed`;
    }
    case EV.EFI_VARIABLE_AUTHORITY:
      return "a different authority verified boot software";
    case EV.EFI_VARIABLE_BOOT:
    case EV.EFI_VARIABLE_BOOT2:
      return d.kind === "efi-variable" && d.name === "BootOrder" ? "boot order changed" : `boot option ${d.kind === "efi-variable" ? d.name : ""} changed`.replace("  ", " ");
    case EV.EFI_BOOT_SERVICES_APPLICATION:
      if (role === "kernel") return "kernel digest differs";
      if (role && LOADER_ROLES.has(role)) return "bootloader digest differs";
      return "EFI application digest differs";
    case EV.EFI_BOOT_SERVICES_DRIVER:
    case EV.EFI_RUNTIME_SERVICES_DRIVER:
      return "EFI driver or option ROM differs";
    case EV.IPL: {
      const kind = d.kind === "text" ? iplKind(ev.pcr, d.text) : "";
      if (kind === "kernel_cmdline") return "kernel command line differs";
      if (kind === "kernel") return "kernel digest differs";
      if (kind === "initrd") return "initrd digest differs";
      if (kind === "grub_cmd") return "GRUB command differs";
      return "boot loader measurement differs";
    }
    case EV.S_CRTM_VERSION:
    case EV.S_CRTM_CONTENTS:
    case EV.POST_CODE:
    case EV.POST_CODE2:
    case EV.EFI_PLATFORM_FIRMWARE_BLOB:
    case EV.EFI_PLATFORM_FIRMWARE_BLOB2:
    case EV.NONHOST_CODE:
    case EV.NONHOST_INFO:
      return "firmware changed";
    case EV.CPU_MICROCODE:
      return "CPU microcode changed";
    case EV.EFI_HANDOFF_TABLES:
    case EV.EFI_HANDOFF_TABLES2:
      return "firmware handoff tables changed";
    case EV.EFI_GPT_EVENT:
      return "partition table changed";
    case EV.SEPARATOR:
      return d.kind === "separator" && d.error ? "firmware signalled an error" : "separator differs";
    case EV.EFI_ACTION:
    case EV.ACTION:
      return "firmware action differs";
    case EV.EVENT_TAG:
      return "Windows boot configuration differs";
    case EV.COMPACT_HASH:
      return "Windows compact measurement differs";
    default:
      return `${ev.typeName} differs`;
  }
}
