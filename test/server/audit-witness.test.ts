/** The service's checkpoints (signed, logged: kept outside the database), /v1/audit/verify with anchors and checkpoints, and the proof routes. */
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
import { canonicalJson, entryLeafHash, openStore, type Store } from "../../src/store/index.js";
import { verifyConsistency, verifyInclusion } from "../../src/crypto/merkle.js";
import { parseCheckpoint } from "../../src/tokens/audit.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-audit-witness-"));
const lines: { msg?: string; anchor?: string; auditCheckpoint?: string }[] = [];
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
  app = await buildApp({ store, logger: pino({ level: "info" }, sink), auditWitnessMs: 20, auditCheckpointMs: 20, attest: { sweepMs: 0 } });
});
after(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function witnessed(treeSize: number): Promise<{ checkpoint: string; anchor: string }> {
  for (let i = 0; i < 2000; i++) {
    const l = lines.find((x) => x.msg === "audit head" && x.auditCheckpoint !== undefined && Number(x.anchor?.split(":")[0]) >= treeSize);
    if (l) return { checkpoint: l.auditCheckpoint!, anchor: l.anchor! };
    await sleep(10);
  }
  throw new Error(`no checkpoint of ${treeSize} leaves logged`);
}

const get = (url: string) => app.inject({ method: "GET", url, headers: { authorization: `Bearer ${auditor}` } });
const post = (url: string, payload: unknown) => app.inject({ method: "POST", url, payload: payload as object, headers: { authorization: `Bearer ${auditor}` } });

test("the service checkpoints new entries and logs each checkpoint once, with its SIZE:ROOT; the API verifies against either", async () => {
  const e1 = await store.audit.append({ at: Date.now(), actor: "test", action: "x.one", outcome: "success" });
  const first = await witnessed(e1.seq);
  const [size, root] = first.anchor.split(":");
  // the checkpointer may have moved on since (the service appends entries of its own)
  assert.ok(Number(size) > 0 && Number(size) <= (await store.audit.head()).checkpoint!.treeSize, first.anchor);

  const e2 = await store.audit.append({ at: Date.now(), actor: "test", action: "x.two", outcome: "success" });
  await witnessed(e2.seq);
  assert.equal(lines.filter((x) => x.msg === "audit head" && x.anchor === first.anchor).length, 1, "logged once while the head stood still");

  const ok = (await get(`/v1/audit/verify?anchor=${first.anchor}&checkpoint=${first.checkpoint}`)).json();
  assert.deepEqual([ok.ok, ok.pending >= 0, ok.kept], [true, true, [{ treeSize: Number(size), rootHash: root }]]);
  assert.match(ok.checkpoint, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const both = (await post("/v1/audit/verify", { anchors: [first.anchor], checkpoints: [first.checkpoint, ok.checkpoint] })).json();
  assert.equal(both.ok, true, both.reason);
  const forged = (await get(`/v1/audit/verify?anchor=${size}:${"0".repeat(64)}`)).json();
  const lastLeaf = (await store.audit.list({ limit: 1000 })).find((e) => e.leafIndex === Number(size) - 1);
  assert.deepEqual([forged.ok, forged.problem, forged.firstBadSeq], [false, "anchor", lastLeaf?.seq]);
  const beyond = (await get(`/v1/audit/verify?anchor=${Number(size) + 1000}:${root}`)).json();
  assert.deepEqual([beyond.ok, beyond.problem], [false, "anchor"]);
  const malformed = await get("/v1/audit/verify?anchor=1:xyz");
  assert.deepEqual([malformed.statusCode, malformed.json().code], [400, "ERR_VALIDATION"]);
  const notCheckpoint = await post("/v1/audit/verify", { checkpoints: ["a.b.c"] });
  assert.deepEqual([notCheckpoint.statusCode, notCheckpoint.json().code], [400, "ERR_VALIDATION"]);
});

test("inclusion and consistency proofs from the API verify against the signed checkpoint (RFC 9162 §2.1.3, §2.1.4)", async () => {
  const e = await store.audit.append({ at: Date.now(), actor: "test", action: "x.proof", outcome: "success", details: { n: 1 } });
  await witnessed(e.seq);
  const p = (await get(`/v1/audit/${e.seq}/proof`)).json();
  const cp = parseCheckpoint(p.checkpoint);
  assert.deepEqual([cp.treeSize, cp.rootHash], [p.treeSize, p.rootHash]);
  const leaf = entryLeafHash({ ...e, details: canonicalJson(e.details) });
  assert.equal(p.leafHash, leaf);
  assert.ok(verifyInclusion(p.leafIndex, p.treeSize, Buffer.from(leaf, "hex"), p.proof.map((h: string) => Buffer.from(h, "hex")), Buffer.from(p.rootHash, "hex")));

  const c = (await get(`/v1/audit/consistency?from=1&to=${p.treeSize}`)).json();
  const [one] = await store.audit.list({ limit: 1 });
  assert.equal(c.from.rootHash, entryLeafHash({ ...one, details: canonicalJson(one.details) }), "the tree of one leaf has that leaf's hash as its root");
  assert.ok(verifyConsistency(1, p.treeSize, Buffer.from(c.from.rootHash, "hex"), Buffer.from(c.to.rootHash, "hex"), c.proof.map((h: string) => Buffer.from(h, "hex"))));
  assert.equal((await get("/v1/audit/checkpoint")).json().treeSize >= p.treeSize, true);
  const missing = await get("/v1/audit/999999/proof");
  assert.deepEqual([missing.statusCode, missing.json().code], [404, "ERR_NOT_FOUND"]);
  const tooLarge = await get(`/v1/audit/consistency?from=999999`);
  assert.deepEqual([tooLarge.statusCode, tooLarge.json().code], [400, "ERR_VALIDATION"]);
});
