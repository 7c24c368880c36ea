import { eventLogError, LeCursor } from "./bytes.js";
import { LIMITS, SIPA, sipaName } from "./constants.js";
import type { SipaEvent, SipaItem } from "./types.js";

const MAX_DEPTH = LIMITS.sipaDepth;
const AGGREGATION = SIPA.AGGREGATION;

/**
 * Windows SIPA data (wbcl.h TCG_PCClientTaggedEventStruct, the PFP §10.4.2 TCG_PCClientTaggedEvent
 * layout): a sequence of {u32 id, u32 size, data}; ids with the AGGREGATION flag are containers whose
 * data is again such a sequence. Nesting is bounded by LIMITS.sipaDepth.
 *
 * Windows logs carry thousands of items; the structure is checked when the log is parsed and the
 * items are built on first access, so a replay never pays for them.
 */
export function decodeSipaEvent(c: LeCursor): SipaEvent {
  const { buf, base } = c;
  walk(buf, 0, buf.length, base, 0, undefined);
  let items: SipaItem[] | undefined;
  return {
    kind: "sipa",
    get items() {
      if (!items) walk(buf, 0, buf.length, base, 0, (items = []));
      return items;
    },
  };
}

/** Checks the TLV structure of buf[start, end); with `out`, also builds the items. */
function walk(buf: Buffer, start: number, end: number, base: number, depth: number, out: SipaItem[] | undefined): void {
  if (depth > MAX_DEPTH) throw eventLogError("too-large", `SIPA containers nested deeper than ${MAX_DEPTH}`, base + start, { field: "SIPA" });
  let pos = start;
  while (pos < end) {
    if (end - pos < 8) throw eventLogError("truncated", "truncated SIPA header", base + pos, { field: "SIPA" });
    const id = buf.readUInt32LE(pos);
    const size = buf.readUInt32LE(pos + 4);
    if (size > end - pos - 8) throw eventLogError("truncated", `SIPA item of ${size} bytes exceeds its container`, base + pos + 4, { field: "SIPA size" });
    const container = (id & AGGREGATION) !== 0;
    if (out) {
      const item: SipaItem = { id, name: sipaName(id), data: buf.subarray(pos + 8, pos + 8 + size) };
      if (container) walk(buf, pos + 8, pos + 8 + size, base, depth + 1, (item.children = []));
      out.push(item);
    } else if (container) {
      walk(buf, pos + 8, pos + 8 + size, base, depth + 1, undefined);
    }
    pos += 8 + size;
  }
}

/** All SIPA items, depth-first (containers before their children). */
export function flattenSipa(items: readonly SipaItem[], out: SipaItem[] = []): SipaItem[] {
  for (const it of items) {
    out.push(it);
    if (it.children) flattenSipa(it.children, out);
  }
  return out;
}
