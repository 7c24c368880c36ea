/** The service process as operators run it: real HTTP(S) on 127.0.0.1, first-start admin token, problem+json. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer } from "../../src/server/serve.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-serve-"));
after(() => rmSync(dir, { recursive: true, force: true }));
/** A fresh folder per database: the initial admin token file sits beside it. */
const dbIn = (name: string) => (mkdirSync(join(dir, name)), join(dir, name, "tpmtrust.db"));

test("first start writes a 0600 admin token; health, readiness, OpenAPI and problem+json 404", async () => {
  const db = dbIn("a");
  const s = await startServer({ db, listen: "127.0.0.1:0", logger: false });
  try {
    const tokenFile = join(dir, "a", "admin-token");
    assert.equal(s.adminTokenFile, tokenFile);
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    assert.match(readFileSync(tokenFile, "utf8"), /^tpmtrust_[A-Za-z0-9_-]{43}\n$/);
    assert.ok((await s.store.adminTokens.verify(readFileSync(tokenFile, "utf8").trim()))?.role === "admin");

    assert.deepEqual(await (await fetch(`${s.url}/healthz`)).json(), { status: "ok" });
    assert.equal((await (await fetch(`${s.url}/readyz`)).json()).database, "sqlite");
    const openapi = await (await fetch(`${s.url}/openapi.json`)).json();
    assert.equal(openapi.openapi, "3.1.0");
    const nf = await fetch(`${s.url}/v1/nothing-here`);
    assert.equal(nf.status, 404);
    assert.equal(nf.headers.get("content-type"), "application/problem+json; charset=utf-8");
    const p = await nf.json();
    assert.equal(p.code, "ERR_NOT_FOUND");
    assert.equal(p.status, 404);
    const entries = await s.store.audit.list();
    assert.ok(entries.some((e) => e.action === "admin.token.create"));
  } finally {
    await s.close();
  }
  // a second start on the same database keeps the existing token and writes none
  const again = await startServer({ db, listen: "127.0.0.1:0", logger: false });
  assert.equal(again.adminTokenFile, undefined);
  await again.close();
});

test("serves HTTPS from --tls-cert/--tls-key files", async () => {
  const key = join(dir, "tls.key");
  const cert = join(dir, "tls.crt");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  const s = await startServer({ db: dbIn("tls"), listen: "127.0.0.1:0", logger: false, tls: { cert: readFileSync(cert), key: readFileSync(key) } });
  try {
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const body = await new Promise<string>((resolve, reject) => {
      request(`${s.url}/healthz`, { ca: readFileSync(cert) }, (res) => {
        let b = "";
        res.on("data", (c) => (b += c));
        res.on("end", () => resolve(b));
      })
        .on("error", reject)
        .end();
    });
    assert.deepEqual(JSON.parse(body), { status: "ok" });
  } finally {
    await s.close();
  }
});

test("`tpmtrust serve` binds 127.0.0.1, prints its URL and stops gracefully on SIGTERM", async () => {
  const bin = fileURLToPath(new URL("../../bin/tpmtrust.js", import.meta.url));
  const child = spawn(process.execPath, [bin, "serve", "--db", dbIn("cli"), "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (c) => {
        out += c;
        const m = /^(http:\/\/127\.0\.0\.1:\d+)\n/m.exec(out);
        if (m) resolve(m[1]);
      });
      child.once("exit", (code) => reject(new Error(`serve exited with ${code}`)));
    });
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  } finally {
    const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  }
  for (const args of [["--listen", "nonsense"], ["--verify-threads", "100000"], ["--verify-threads", "-1"]]) {
    const bad = spawn(process.execPath, [bin, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    bad.stderr.on("data", (c) => (err += c));
    const code = await new Promise<number | null>((r) => bad.once("exit", (c) => r(c)));
    assert.equal(code, 2, args.join(" "));
    assert.match(err, /ERR_USAGE/, args.join(" "));
  }
});
