/**
 * DPS device registrations per second end to end over HTTP on loopback: the service on a SQLite
 * file, a keep-alive client (fetch) in the same process, one request at a time. Devices are software TPMs
 * whose answers are computed before measuring (each device's key is unwrapped from its challenge
 * and its SAS token signed beforehand), so no TPM is measured. Figures:
 * - registration: PUT …/register with the SAS token (verify, allocate, record, audit) → 202, then
 *   GET …/operations/{id} → assigned (which wraps the key to the device's EK and SRK again);
 * - challenge: PUT …/register without a token → 401 with a fresh authenticationKey.
 * Each is compared with GET /healthz over the same client and server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compare, type BenchFigure } from "./lib.js";
import { startServer } from "../src/server/serve.js";
import { addEnrollment } from "../src/provisioning/enrollments.js";
import { putHub } from "../src/provisioning/hubs.js";
import { encodeTpm2bPublic } from "../src/tpm/structures.js";
import { sasToken, softDevice } from "../test/helpers/soft-device.js";

const DEVICES = 32;
const API = "api-version=2021-06-01";
/** One request over fetch's keep-alive connection pool. */
async function call(url: string, method: string, body?: string, authorization?: string): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = body ? { "content-type": "application/json" } : {};
  if (authorization) headers.authorization = authorization;
  const r = await fetch(url, { method, headers, body });
  return { status: r.status, body: await r.text() };
}

function expect(r: { status: number; body: string }, status: number, what: string): { status: number; body: string } {
  if (r.status !== status) throw new Error(`${what}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
  return r;
}

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-bench-dps-"));
  const s = await startServer({
    db: join(dir, "bench.db"),
    listen: "127.0.0.1:0",
    logger: false,
    adminTokenFile: join(dir, "admin-token"),
    provisioningKeyFile: join(dir, "provisioning-key"),
    provisioning: { challengeLimit: Number.MAX_SAFE_INTEGER, retryAfterSeconds: 0 },
  });
  try {
    const by = { actor: "bench", now: Date.now() };
    for (const [name, weight] of [["hub-a", 1], ["hub-b", 2], ["hub-c", 1]] as const) await putHub(s.store, { name, hostname: `${name}.azure-devices.example`, weight }, by);
    const idScope = (await s.store.provisioning.getIdScope())!;
    const devices: { url: string; body: string; token: string }[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const d = softDevice();
      await addEnrollment(s.store, { registrationId: d.registrationId, endorsementKey: encodeTpm2bPublic(d.ek) }, by);
      const url = `${s.url}/${idScope}/registrations/${d.registrationId}`;
      const body = JSON.stringify(d.body());
      const challenge = expect(await call(`${url}/register?${API}`, "PUT", body), 401, "challenge");
      const key = d.unwrap(JSON.parse(challenge.body).authenticationKey);
      devices.push({ url, body, token: sasToken(key, idScope, d.registrationId, Math.floor(Date.now() / 1000) + 7200) });
    }
    let next = 0;
    const register = async () => {
      const d = devices[next++ % DEVICES];
      const accepted = expect(await call(`${d.url}/register?${API}`, "PUT", d.body, d.token), 202, "register");
      const op = expect(await call(`${d.url}/operations/${JSON.parse(accepted.body).operationId}?${API}`, "GET", undefined, d.token), 200, "operation");
      if (JSON.parse(op.body).status !== "assigned") throw new Error(`not assigned: ${op.body.slice(0, 300)}`);
    };
    const challenge = async () => {
      const d = devices[next++ % DEVICES];
      expect(await call(`${d.url}/register?${API}`, "PUT", d.body), 401, "challenge");
    };
    const health = async () => {
      expect(await call(`${s.url}/healthz`, "GET"), 200, "healthz");
    };
    const opts = { runs: 5, ms: 1000 };
    return [
      await compare("DPS registration end to end over HTTP, SQLite (PUT with SAS → 202, GET operation → assigned; 1 in flight)", register, "GET /healthz, same client and server", health, {
        ...opts,
        unit: "registrations/s",
      }),
      await compare("DPS challenge over HTTP, SQLite (PUT without SAS → 401 authenticationKey; RSA-2048 EK and SRK)", challenge, "GET /healthz, same client and server", health, { ...opts, unit: "challenges/s" }),
    ];
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
