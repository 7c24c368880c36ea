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
 * Windows logs carry thousands of items: the structure is checked when the log is parsed, the item
 * tree is built only on first access, and interpretation reads the bytes through `visitSipa`.
 */
export function decodeSipaEvent(c: LeCursor): SipaEvent {
  visitSipa(c.buf, c.base, () => undefined);
  return new LazySipaEvent(c.buf, c.base);
}

class LazySipaEvent implements SipaEvent {
  readonly kind = "sipa";
  #items: SipaItem[] | undefined;
  readonly #buf: Buffer;
  readonly #base: number;
  constructor(buf: Buffer, base: number) {
    this.#buf = buf;
    this.#base = base;
  }
  get items(): SipaItem[] {
    return (this.#items ??= buildItems(this.#buf, this.#base));
  }
  toJSON() {
    return { kind: this.kind, items: this.items };
  }
}

/**
 * Visits every item depth-first (containers before their children) as `visit(id, start, end, parent)`:
 * its data is buf[start, end), `parent` is the id of the enclosing container (0 at the top).
 * `base` is buf's offset in the log, for errors.
 */
export function visitSipa(buf: Buffer, base: number, visit: (id: number, start: number, end: number, parent: number) => void, start = 0, end = buf.length, parent = 0, depth = 0): void {
  if (depth > MAX_DEPTH) throw eventLogError("too-large", `SIPA containers nested deeper than ${MAX_DEPTH}`, base + start, { field: "SIPA" });
  let pos = start;
  while (pos < end) {
    if (end - pos < 8) throw eventLogError("truncated", "truncated SIPA header", base + pos, { field: "SIPA" });
    const id = buf.readUInt32LE(pos);
    const size = buf.readUInt32LE(pos + 4);
    if (size > end - pos - 8) throw eventLogError("truncated", `SIPA item of ${size} bytes exceeds its container`, base + pos + 4, { field: "SIPA size" });
    visit(id, pos + 8, pos + 8 + size, parent);
    if (id & AGGREGATION) visitSipa(buf, base, visit, pos + 8, pos + 8 + size, id, depth + 1);
    pos += 8 + size;
  }
}

function buildItems(buf: Buffer, base: number): SipaItem[] {
  const top: SipaItem[] = [];
  const open: { end: number; children: SipaItem[] }[] = [];
  visitSipa(buf, base, (id, start, end) => {
    while (open.length && start - 8 >= open[open.length - 1].end) open.pop();
    const item: SipaItem = { id, name: sipaName(id), data: buf.subarray(start, end), children: id & AGGREGATION ? [] : undefined };
    (open.length ? open[open.length - 1].children : top).push(item);
    if (item.children) open.push({ end, children: item.children });
  });
  return top;
}

/** All SIPA items of a tree, depth-first (containers before their children). */
export function flattenSipa(items: readonly SipaItem[], out: SipaItem[] = []): SipaItem[] {
  for (const it of items) {
    out.push(it);
    if (it.children) flattenSipa(it.children, out);
  }
  return out;
}
