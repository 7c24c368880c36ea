/**
 * Creating a CA races between service instances (two stores on one PostgreSQL) and between requests
 * of one instance (SQLite): exactly one authority is stored and everybody signs with it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestationCa, ATTESTATION_CA_KIND } from "../../src/ca/ak-ca.js";
import { initCa } from "../../src/ca/authority.js";
import { openStore, type Store } from "../../src/store/index.js";
import { BACKENDS, type Backend } from "../helpers/store.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");

for (const [name, make] of BACKENDS) {
  describe(`CA creation races on ${name}`, () => {
    let backend: Backend;
    let dir: string;
    let saved: string | undefined;
    before(async () => {
      backend = await make();
      dir = mkdtempSync(join(tmpdir(), "tpmtrust-ca-race-"));
      saved = process.env.TPMTRUST_STATE_DIR;
      process.env.TPMTRUST_STATE_DIR = dir;
    });
    after(async () => {
      if (saved === undefined) delete process.env.TPMTRUST_STATE_DIR;
      else process.env.TPMTRUST_STATE_DIR = saved;
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Two instances on PostgreSQL; on SQLite one store (one writer per file per process) serving both. */
    async function instances(): Promise<{ a: Store; b: Store; close: () => Promise<void> }> {
      const url = await backend.newUrl();
      const a = await openStore(url);
      const b = name === "postgres" ? await openStore(url) : a;
      return { a, b, close: async () => void (await Promise.all([a.close(), b !== a ? b.close() : undefined])) };
    }

    test("the attestation CA created by several callers at once is one authority, audited once", async () => {
      const { a, b, close } = await instances();
      try {
        const got = await Promise.all([attestationCa(a, T0), attestationCa(b, T0), attestationCa(a, T0), attestationCa(b, T0)]);
        assert.equal(new Set(got.map((g) => g.authority.id)).size, 1);
        assert.equal(new Set(got.map((g) => g.certificate.serialNumber)).size, 1, "everybody signs under the stored certificate");
        const current = await a.ca.currentAuthority(ATTESTATION_CA_KIND);
        assert.equal(current?.id, got[0].authority.id);
        assert.equal((await a.audit.list({ action: "ca.attestation.create" })).length, 1);
      } finally {
        await close();
      }
    });

    test("two `ca init` at once: one stores its root and issuing CA, the other is ERR_CONFLICT", async () => {
      const { a, b, close } = await instances();
      try {
        const results = await Promise.allSettled([a, b].map((s) => initCa(s, { actor: "test", now: T0, keyDir: join(dir, "keys") })));
        assert.equal(results.filter((r) => r.status === "fulfilled").length, 1, JSON.stringify(results));
        const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
        assert.equal((lost.reason as { code?: string }).code, "ERR_CONFLICT");
        const won = (results.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<Awaited<ReturnType<typeof initCa>>>).value;
        assert.equal((await a.ca.currentAuthority("issuing"))?.id, won.issuing.id);
        assert.equal((await a.ca.currentAuthority("root"))?.id, won.root.id);
        assert.equal((await a.audit.list({ action: "ca.init" })).length, 1);
      } finally {
        await close();
      }
    });
  });
}
