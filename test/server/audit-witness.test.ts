/** The audit head written to the service log (an anchor outside the database) and GET /v1/audit/verify?anchor=. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { buildApp } from "../../src/server/app.js";
import { openStore, type Store } from "../../src/store/index.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-audit-witness-"));
const lines: { msg?: string; anchor?: string; auditHead?: { seq: number; hash: string } }[] = [];
let store: Store;
let app: FastifyInstance;
let auditor: string;
before(async () => {
  store = await openStore(join(dir, "t.db"));
  auditor = (await store.adminTokens.create({ at: Date.now(), role: "auditor" })).token;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  app = await buildApp({ store, logger: pino({ level: "info" }, sink), auditWitnessMs: 20, attest: { sweepMs: 0 } });
});
after(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function witnessed(seq: number): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const l = lines.find((x) => x.msg === "audit head" && x.auditHead?.seq === seq);
    if (l) return l.anchor!;
    await sleep(10);
  }
  throw new Error(`audit head ${seq} never logged`);
}

test("the service logs the audit head when it moved, as SEQ:HASH; the API verifies against such an anchor", async () => {
  await store.audit.append({ at: Date.now(), actor: "test", action: "x.one", outcome: "success" });
  const head = await store.audit.head();
  const anchor = await witnessed(head.seq);
  assert.equal(anchor, `${head.seq}:${head.hash}`);
  await sleep(60);
  assert.equal(lines.filter((x) => x.msg === "audit head" && x.auditHead?.seq === head.seq).length, 1, "logged once while the head stands still");

  await store.audit.append({ at: Date.now(), actor: "test", action: "x.two", outcome: "success" });
  await witnessed(head.seq + 1);

  const verify = (q: string) => app.inject({ method: "GET", url: `/v1/audit/verify${q}`, headers: { authorization: `Bearer ${auditor}` } });
  assert.equal((await verify(`?anchor=${anchor}`)).json().ok, true);
  const forged = await verify(`?anchor=${head.seq}:${"0".repeat(64)}`);
  assert.deepEqual([forged.json().ok, forged.json().problem, forged.json().firstBadSeq], [false, "anchor", head.seq]);
  const beyond = await verify(`?anchor=${head.seq + 5}:${head.hash}`);
  assert.deepEqual([beyond.json().ok, beyond.json().problem], [false, "anchor"]);
  const malformed = await verify("?anchor=1:xyz");
  assert.deepEqual([malformed.statusCode, malformed.json().code], [400, "ERR_VALIDATION"]);
});
