/**
 * A service on 127.0.0.1 and a "workstation" to administer it from: the CLI as a process in a
 * clean working folder of its own, with --server/--token and nothing in its environment that names
 * a database, an HSM or a key server. Principals: alice and bob (admins), carol (auditor).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, type CliResult } from "./cli.js";
import { api, out, startService, type Service } from "../e2e/harness.js";

/** Nothing on the workstation says where a database, HSM or key server is. */
export const CLEAN_ENV: NodeJS.ProcessEnv = { TPMTRUST_DB: undefined, TPMTRUST_STATE_DIR: undefined, SOFTHSM2_CONF: undefined, TPMTRUST_MASTER_KEY: undefined, TPMTRUST_SERVER: undefined, TPMTRUST_TOKEN: undefined };

export interface RemoteAdmin {
  dir: string;
  svc: Service;
  /** the workstation's working folder (nothing may appear in it) */
  workstation: string;
  tokens: { alice: string; bob: string; carol: string };
  /** the CLI with --server and --token (alice's unless given) */
  remote(args: string[], token?: string): Promise<CliResult>;
  /** a GET with alice's token (the member of every area group a test sets), asserting 200 */
  get(path: string): Promise<any>;
  /** writes an input file outside the workstation's folder */
  input(name: string, data: string | Buffer): string;
  close(): Promise<void>;
}

export async function remoteAdmin(prefix: string): Promise<RemoteAdmin> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const svc = await startService(join(dir, "service"), join(dir, "tpmtrust.db"));
  const token = async (role: string, name: string) => {
    const r = await api(svc.url, "POST", "/v1/admin/tokens", { role, name }, svc.admin);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.token as string;
  };
  const [alice, bob, carol] = await Promise.all([token("admin", "alice"), token("admin", "bob"), token("auditor", "carol")]);
  const workstation = join(dir, "workstation");
  mkdirSync(workstation);
  mkdirSync(join(dir, "inputs"));
  return {
    dir,
    svc,
    workstation,
    tokens: { alice, bob, carol },
    remote: (args, t = alice) => cli([...args, "--server", svc.url, "--token", t], { cwd: workstation, env: CLEAN_ENV }),
    async get(path) {
      const r = await api(svc.url, "GET", path, undefined, alice);
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`);
      return r.body;
    },
    input(name, data) {
      const p = join(dir, "inputs", name);
      writeFileSync(p, data);
      return p;
    },
    async close() {
      await svc.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Exit 0, or the run explained. */
export function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, out(r));
  return r;
}

/** Refused with this code of the error table and its exit code. */
export function refused(r: CliResult, code: string, exit: number): void {
  assert.equal(r.code, exit, out(r));
  assert.match(r.stderr, new RegExp(`error ${code}:`), out(r));
}
