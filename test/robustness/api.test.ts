/**
 * Every operation of the real server (from its /openapi.json) under generated requests over HTTP:
 * never 5xx, every error problem+json with a known code. Bounded per operation for CI
 * (FUZZ_RUNS raises it); `npm run fuzz` runs the same generators for longer.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { contractViolation, operationsOf, requestsFor, send, type Credentials, type Operation } from "./api-fuzz.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-apifuzz-"));
let server: RunningServer;
let creds: Credentials;
let ops: Operation[];

before(async () => {
  server = await startServer({ db: join(dir, "fuzz.db"), listen: "127.0.0.1:0", logger: false, attest: { sweepMs: 0 } });
  creds = { admin: readFileSync(server.adminTokenFile!, "utf8").trim(), auditor: (await server.store.adminTokens.create({ at: Date.now(), role: "auditor" })).token };
  ops = operationsOf(await (await fetch(`${server.url}/openapi.json`)).json());
});
after(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("every documented operation answers generated requests without 5xx, errors as problem+json with known codes", async (t) => {
  assert.ok(ops.length >= 30, `the OpenAPI document lists ${ops.length} operations`);
  for (const op of ops) {
    await t.test(`${op.method} ${op.path}`, async () => {
      await fc.assert(
        fc.asyncProperty(requestsFor(server.url, op, creds), async (req) => {
          const v = contractViolation(op, await send(req));
          if (v) throw new Error(`${req.method} ${req.url} ${req.body?.slice(0, 300) ?? ""} → ${v}`);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

test("malformed transport on every operation with a body: bad JSON, wrong type, empty, oversized", async () => {
  const withBody = ops.filter((o) => o.body);
  assert.ok(withBody.length >= 10);
  for (const op of withBody) {
    const url = `${server.url}${op.path.replace(/\{[^}]+\}/g, "x")}`;
    for (const [body, type] of [
      ["{", "application/json"],
      ['{"a":1}', "application/xml"],
      ["", "application/json"],
      ["[]", "application/json"],
      ["null", "application/json"],
      [`{"x":"${"A".repeat(9 << 20)}"}`, "application/json"],
      ['{"__proto__":{"admin":true}}', "application/json"],
    ]) {
      const a = await send({ method: op.method, url, headers: { "content-type": type, authorization: `Bearer ${creds.admin}` }, body });
      const v = contractViolation(op, a);
      assert.equal(v, undefined, `${op.method} ${op.path} with ${type} ${body.slice(0, 30)}: ${v}`);
      assert.ok(a.status >= 400, `${op.method} ${op.path} accepted ${body.slice(0, 30)} as ${type}`);
    }
  }
});
