// An area without a dedicated view yet: every parameterless GET collection the server has under the
// area's path prefixes, as tables; "not available" when the server has none.
import { api, autoTable, clear, collections, errorBox, h, notAvailable, section } from "../lib.js";

export async function renderArea(main, { title, prefixes, what }) {
  const paths = prefixes.flatMap(collections);
  if (paths.length === 0) return clear(main, h("h1", {}, title), notAvailable(what));
  const blocks = await Promise.all(
    paths.map(async (p) => {
      try {
        const r = await api("GET", p);
        const rows = Array.isArray(r) ? r : (Object.values(r ?? {}).find(Array.isArray) ?? [r]);
        return section(p, autoTable(rows, p));
      } catch (e) {
        return section(p, errorBox(e));
      }
    }),
  );
  clear(main, h("h1", {}, title), blocks);
}
