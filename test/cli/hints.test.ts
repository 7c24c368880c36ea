/**
 * The failures operators meet first end with a hint that says what to do: the real CLI against a
 * missing database, a closed PostgreSQL port, no swtpm, no TPM device, and the agent's HTTP client
 * against a closed port.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServiceClient } from "../../src/agent/http.js";
import { hintFor } from "../../src/cli/hints.js";
import { isTpmTrustError } from "../../src/errors.js";
import { freePorts } from "../helpers/ports.js";
import { cli } from "../helpers/cli.js";

test("CLI errors carry a hint: missing database, PostgreSQL down, no swtpm, no TPM device", async () => {
  const port = await freePorts(1);
  const cases: [string[], RegExp, RegExp][] = [
    [["audit", "verify", "--db", "/nonexistent/tpmtrust.db"], /^error ERR_IO: no database at \/nonexistent\/tpmtrust\.db$/m, /^hint: start the service once to create it \(tpmtrust serve --db \/nonexistent\/tpmtrust\.db\)/m],
    [["hosts", "list", "--db", `postgres://tpmtrust@127.0.0.1:${port}/fleet`], /^error ERR_IO: cannot use the PostgreSQL database/m, /^hint: is PostgreSQL running and reachable at that host and port\?/m],
    [["agent", "identify", "--tpm", `swtpm:host=127.0.0.1,port=${port}`], /^error ERR_TPM_TRANSPORT: swtpm 127\.0\.0\.1:\d+: connect ECONNREFUSED/m, /^hint: no swtpm listens there; start one .*swtpm socket --tpm2/m],
    [["agent", "identify", "--tpm", "/dev/no-such-tpm0"], /^error ERR_TPM_TRANSPORT: cannot open TPM device \/dev\/no-such-tpm0: ENOENT/m, /^hint: this machine shows no TPM device/m],
  ];
  for (const [args, error, hint] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, error);
    assert.match(r.stderr, hint);
  }
});

test("the agent's client names an unreachable service and the hint says what to check", async () => {
  const port = await freePorts(1);
  const e = await new ServiceClient({ url: `http://127.0.0.1:${port}` }).call("GET", "/healthz").then(
    () => assert.fail("a closed port answered"),
    (err: unknown) => err,
  );
  assert.ok(isTpmTrustError(e) && e.code === "ERR_UNREACHABLE");
  assert.match(hintFor(e)!, /is tpmtrust serve running at that address\? Check --server/);
});

test("errors without a known remedy get no hint", async () => {
  const r = await cli(["trust", "allowlist", "add", "xyz", "--db", "/nonexistent/x.db"]);
  assert.doesNotMatch(r.stderr, /^hint:/m);
});
