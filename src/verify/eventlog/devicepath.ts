import { formatGuid, utf16z } from "./bytes.js";
import { LIMITS } from "./constants.js";
import type { DevicePath, DevicePathNode } from "./types.js";

/**
 * EFI_DEVICE_PATH_PROTOCOL (UEFI 2.10 §10.3): nodes of {Type u8, SubType u8, Length u16 LE, data}
 * up to an End node (0x7F/0xFF). Decoded best effort for display and file names; the raw bytes
 * stay the fact. A malformed path keeps the nodes read so far and says where it broke.
 */
export function decodeDevicePath(raw: Buffer): DevicePath {
  const nodes: DevicePathNode[] = [];
  const files: string[] = [];
  let pos = 0;
  let error: string | undefined;
  while (pos < raw.length) {
    if (nodes.length >= LIMITS.devicePathNodes) {
      error = `more than ${LIMITS.devicePathNodes} nodes`;
      break;
    }
    if (raw.length - pos < 4) {
      error = `truncated node header at byte ${pos}`;
      break;
    }
    const type = raw[pos];
    const subType = raw[pos + 1];
    const len = raw.readUInt16LE(pos + 2);
    if (len < 4 || pos + len > raw.length) {
      error = `node length ${len} invalid at byte ${pos}`;
      break;
    }
    const d = raw.subarray(pos + 4, pos + len);
    pos += len;
    if (type === 0x7f) {
      if (subType === 0xff) break;
      nodes.push({ type, subType, text: "," });
      continue;
    }
    const text = nodeText(type, subType, d);
    if (type === 4 && subType === 4) files.push(text);
    nodes.push({ type, subType, text });
  }
  let text = "";
  for (let i = 0; i < nodes.length; i++) text += nodes[i].text === "," || i === 0 || nodes[i - 1].text === "," ? nodes[i].text : `/${nodes[i].text}`;
  return { raw, text, nodes, ...(files.length ? { filePath: joinFilePath(files) } : {}), ...(error ? { error } : {}) };
}

function joinFilePath(parts: string[]): string {
  let out = "";
  for (const p of parts) out += out && !out.endsWith("\\") && !p.startsWith("\\") ? `\\${p}` : p;
  return out;
}

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

function nodeText(type: number, sub: number, d: Buffer): string {
  const n = d.length;
  switch (type) {
    case 1: // hardware
      if (sub === 1 && n >= 2) return `Pci(${hex(d[1])},${hex(d[0])})`;
      if (sub === 3 && n >= 20) return `MemoryMapped(${hex(d.readUInt32LE(0))},${hex(d.readBigUInt64LE(4))},${hex(d.readBigUInt64LE(12))})`;
      if (sub === 4 && n >= 16) return `VenHw(${formatGuid(d.subarray(0, 16))}${d.length > 16 ? `,${d.subarray(16).toString("hex")}` : ""})`;
      if (sub === 5 && n >= 4) return `Ctrl(${hex(d.readUInt32LE(0))})`;
      break;
    case 2: // ACPI
      if (sub === 1 && n >= 8) {
        const hid = d.readUInt32LE(0);
        const uid = d.readUInt32LE(4);
        if (hid === 0x0a0341d0) return `PciRoot(${hex(uid)})`;
        if (hid === 0x0a0841d0) return `PcieRoot(${hex(uid)})`;
        return `Acpi(${eisaId(hid)},${hex(uid)})`;
      }
      if (sub === 3 && n >= 4) return `AcpiAdr(${hex(d.readUInt32LE(0))})`;
      break;
    case 3: // messaging
      if (sub === 1 && n >= 4) return `Ata(${d[0] ? "Secondary" : "Primary"},${d[1] ? "Slave" : "Master"},${d.readUInt16LE(2)})`;
      if (sub === 2 && n >= 4) return `Scsi(${hex(d.readUInt16LE(0))},${hex(d.readUInt16LE(2))})`;
      if (sub === 5 && n >= 2) return `USB(${hex(d[0])},${hex(d[1])})`;
      if (sub === 10 && n >= 16) return `VenMsg(${formatGuid(d.subarray(0, 16))})`;
      if (sub === 11 && n >= 33) return `MAC(${d.subarray(0, 6).toString("hex")},${hex(d[32])})`;
      if (sub === 12 && n >= 8) return `IPv4(${[...d.subarray(4, 8)].join(".")})`;
      if (sub === 13 && n >= 32) return `IPv6(${d.subarray(16, 32).toString("hex")})`;
      if (sub === 18 && n >= 6) return `Sata(${hex(d.readUInt16LE(0))},${hex(d.readUInt16LE(2))},${hex(d.readUInt16LE(4))})`;
      if (sub === 23 && n >= 12) return `NVMe(${hex(d.readUInt32LE(0))},${d.toString("hex", 4, 12).toUpperCase().replace(/(..)(?!$)/g, "$1-")})`;
      if (sub === 24) return `Uri(${d.toString("latin1")})`;
      break;
    case 4: // media
      if (sub === 1 && n >= 38) {
        const part = d.readUInt32LE(0);
        const start = d.readBigUInt64LE(4);
        const size = d.readBigUInt64LE(12);
        const sigType = d[37];
        const sig = sigType === 2 ? `GPT,${formatGuid(d.subarray(20, 36))}` : sigType === 1 ? `MBR,${hex(d.readUInt32LE(20))}` : `${sigType}`;
        return `HD(${part},${sig},${hex(start)},${hex(size)})`;
      }
      if (sub === 2 && n >= 20) return `CDROM(${hex(d.readUInt32LE(0))},${hex(d.readBigUInt64LE(4))},${hex(d.readBigUInt64LE(12))})`;
      if (sub === 3 && n >= 16) return `VenMedia(${formatGuid(d.subarray(0, 16))})`;
      if (sub === 4) return utf16z(d);
      if (sub === 5 && n >= 16) return `Media(${formatGuid(d.subarray(0, 16))})`;
      if (sub === 6 && n >= 16) return `FvFile(${formatGuid(d.subarray(0, 16))})`;
      if (sub === 7 && n >= 16) return `Fv(${formatGuid(d.subarray(0, 16))})`;
      if (sub === 8 && n >= 20) return `Offset(${hex(d.readBigUInt64LE(4))},${hex(d.readBigUInt64LE(12))})`;
      break;
    case 5: // BIOS boot specification
      if (sub === 1 && n >= 4) return `BBS(${hex(d.readUInt16LE(0))},${d.subarray(4).toString("latin1").replace(/\0.*$/s, "")})`;
      break;
  }
  return `Path(${type},${sub},${d.toString("hex")})`;
}

/** Compressed EISA PNP id (UEFI §10.3.3): three 5-bit letters in the low half, the product number in the high half. */
function eisaId(hid: number): string {
  const v = hid & 0xffff;
  const vendor = String.fromCharCode(0x40 + ((v >> 10) & 0x1f), 0x40 + ((v >> 5) & 0x1f), 0x40 + (v & 0x1f));
  return `${vendor}${(hid >>> 16).toString(16).toUpperCase().padStart(4, "0")}`;
}
