/**
 * Keyset paging of hosts on both backends: every order walks every host once, in order, with ties
 * broken by name, filters applied in the database (LIKE's wildcards literal, case-insensitive).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { HOST_ORDERS, openStore, type Host, type HostOrder, type Store } from "../../src/store/index.js";
import { BACKENDS, type Backend } from "../helpers/store.js";

const N = 31;
const name = (i: number) => `Host-${String(i).padStart(2, "0")}_x`;

/** What the store must give for `order`: a leading "-" reverses, ties by name the same way. */
function expected(hosts: Host[], order: HostOrder): string[] {
  const field = order.replace(/^-/, "") as "name" | "lastAttestationAt" | "health" | "hardwareClass";
  const key = (h: Host) => (field === "lastAttestationAt" ? (h.lastAttestationAt ?? -1) : h[field]);
  const sorted = [...hosts].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return (order.startsWith("-") ? sorted.reverse() : sorted).map((h) => h.name);
}

for (const [backendName, make] of BACKENDS) {
  describe(`hosts paging on ${backendName}`, () => {
    let backend: Backend;
    let s: Store;
    before(async () => {
      backend = await make();
      s = await openStore(await backend.newUrl());
      for (let i = 0; i < N; i++) {
        await s.hosts.add({ name: name(i), hardwareClass: i % 3 ? "r650" : "dl380", policyVersion: "v2", eks: [], at: 1 });
        // every fifth never attested; the others in few distinct times, so ties are common
        if (i % 5) await s.hosts.update(name(i), { lastAttestationAt: 1000 * (i % 4) }, 1);
      }
    });
    after(async () => {
      await s?.close();
      await backend?.close();
    });

    for (const order of HOST_ORDERS) {
      test(`order ${order}: pages of 7 walk every host once, in order`, async () => {
        const all = await s.hosts.page({ order, limit: 1000 });
        assert.deepEqual(all.hosts.map((h) => h.name), expected(all.hosts, order));
        const seen: string[] = [];
        let after: [string | number | null, string] | undefined;
        for (;;) {
          const p = await s.hosts.page({ order, after, limit: 7 });
          seen.push(...p.hosts.map((h) => h.name));
          if (!p.more) break;
          const last = p.hosts.at(-1)!;
          const field = order.replace(/^-/, "");
          after = [field === "lastAttestationAt" ? (last.lastAttestationAt ?? -1) : field === "health" ? last.health : field === "hardwareClass" ? last.hardwareClass : last.name, last.name];
        }
        assert.deepEqual(seen, expected(all.hosts, order));
      });
    }

    test("filters: class, and a case-insensitive substring with % and _ taken literally", async () => {
      assert.equal(await s.hosts.count({ hardwareClass: "dl380" }), Math.ceil(N / 3));
      assert.equal(await s.hosts.count({ text: "host-0" }), 10);
      assert.equal(await s.hosts.count({ text: "_X" }), N);
      assert.equal(await s.hosts.count({ text: "host_" }), 0, "_ is not a wildcard");
      assert.equal(await s.hosts.count({ text: "%" }), 0, "% is not a wildcard");
    });
  });
}
