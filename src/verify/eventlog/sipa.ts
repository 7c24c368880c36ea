import { eventLogError, LeCursor } from "./bytes.js";
import { LIMITS, SIPA, sipaName } from "./constants.js";
import type { SipaItem } from "./types.js";

const MAX_DEPTH = LIMITS.sipaDepth;
const AGGREGATION = SIPA.AGGREGATION;

/**
 * Windows SIPA data (wbcl.h TCG_PCClientTaggedEventStruct, the PFP §10.4.2 TCG_PCClientTaggedEvent
 * layout): a sequence of {u32 id, u32 size, data}; ids with the AGGREGATION flag are containers whose
 * data is again such a sequence. Nesting is bounded by LIMITS.sipaDepth.
 */
export function decodeSipa(c: LeCursor, depth = 0): SipaItem[] {
  if (depth > MAX_DEPTH) throw eventLogError("too-large", `SIPA containers nested deeper than ${MAX_DEPTH}`, c.offset, { field: "SIPA" });
  const items: SipaItem[] = [];
  const buf = c.buf;
  let pos = c.pos;
  while (pos < buf.length) {
    if (buf.length - pos < 8) throw eventLogError("truncated", "truncated SIPA header", c.base + pos, { field: "SIPA" });
    const id = buf.readUInt32LE(pos);
    const size = buf.readUInt32LE(pos + 4);
    if (size > buf.length - pos - 8) throw eventLogError("truncated", `SIPA item of ${size} bytes exceeds its container`, c.base + pos + 4, { field: "SIPA size" });
    const data = buf.subarray(pos + 8, pos + 8 + size);
    const item: SipaItem = { id, name: sipaName(id), data };
    if (id & AGGREGATION) item.children = decodeSipa(new LeCursor(data, c.base + pos + 8), depth + 1);
    items.push(item);
    pos += 8 + size;
  }
  c.pos = pos;
  return items;
}

/** All SIPA items, depth-first (containers before their children). */
export function flattenSipa(items: readonly SipaItem[], out: SipaItem[] = []): SipaItem[] {
  for (const it of items) {
    out.push(it);
    if (it.children) flattenSipa(it.children, out);
  }
  return out;
}
