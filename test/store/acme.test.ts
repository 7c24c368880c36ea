/** The ACME repo on SQLite and PostgreSQL: accounts by key, orders with authorizations, state changes that settle once under concurrency. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { openStore, type Store } from "../../src/store/index.js";
import { BACKENDS, type Backend } from "../helpers/store.js";

const T0 = 1_700_000_000_000;
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

for (const [name, make] of BACKENDS) {
  describe(`acme repo on ${name}`, () => {
    let backend: Backend;
    let store: Store;
    before(async () => {
      backend = await make();
      store = await openStore(await backend.newUrl());
    });
    after(async () => {
      await store?.close();
      await backend.close();
    });

    test("accounts are unique per key thumbprint; deactivation and contacts", async () => {
      const a = await store.acme.addAccount({ thumbprint: "tp-1", jwk: { kty: "EC", crv: "P-256", x: "x", y: "y" }, contact: ["mailto:a@example.com"], at: T0 });
      await assert.rejects(store.acme.addAccount({ at: Date.now(), thumbprint: "tp-1", jwk: {}, contact: [] }), code("ERR_CONFLICT"));
      assert.deepEqual((await store.acme.accountByThumbprint("tp-1"))?.id, a.id);
      await store.acme.updateAccount(a.id, { status: "deactivated", contact: [] });
      const b = await store.acme.getAccount(a.id);
      assert.equal(b?.status, "deactivated");
      assert.deepEqual(b?.contact, []);
      assert.deepEqual(b?.jwk, { kty: "EC", crv: "P-256", x: "x", y: "y" });
    });

    test("an order with its authorization; a challenge settles once, an order moves once, even when raced", async () => {
      const acct = await store.acme.addAccount({ at: Date.now(), thumbprint: "tp-2", jwk: {}, contact: [] });
      const { order, authzs } = await store.acme.createOrder({ accountId: acct.id, template: "t", identifiers: [{ type: "permanent-identifier", value: "h" }], expiresAt: T0 + 1000, tokens: ["tok"], at: T0 });
      assert.equal(order.status, "pending");
      assert.equal(authzs.length, 1);
      assert.deepEqual((await store.acme.ordersOf(acct.id)).map((o) => o.id), [order.id]);
      const settled = await Promise.all([1, 2, 3, 4].map((i) => store.acme.settleAuthz(authzs[0].id, { valid: i % 2 === 0, at: T0 + i, attestation: { i } })));
      assert.equal(settled.filter(Boolean).length, 1);
      const a = (await store.acme.getAuthz(authzs[0].id))!;
      assert.ok(a.status === "valid" || a.status === "invalid");
      assert.equal(a.challengeStatus, a.status);
      const moved = await Promise.all([1, 2, 3].map(() => store.acme.moveOrder(order.id, "pending", { status: "ready" })));
      assert.equal(moved.filter(Boolean).length, 1);
      assert.equal(await store.acme.moveOrder(order.id, "ready", { status: "valid", certSerial: "0a" }), true);
      const done = (await store.acme.getOrder(order.id))!;
      assert.equal(done.status, "valid");
      assert.equal(done.certSerial, "0a");
      assert.equal(await store.acme.moveOrder(order.id, "ready", { status: "invalid", error: { type: "x" } }), false);
      await assert.rejects(
        store.acme.createOrder({ at: Date.now(), accountId: "no-such-account", template: "t", identifiers: [{ type: "permanent-identifier", value: "h" }], expiresAt: T0, tokens: ["t"] }),
        code("ERR_NOT_FOUND"),
      );
    });
  });
}
