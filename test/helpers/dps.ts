/** Talking to a tpmtrust service in tests: the admin API with the initial token, and the DPS device API. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer, type ServeOptions } from "../../src/server/serve.js";
import { encodeTpm2bPublic } from "../../src/tpm/structures.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { sasToken, type SoftDevice } from "./soft-device.js";

export const API_VERSION = "api-version=2021-06-01";

export interface Answer {
  status: number;
  json: any;
  headers: Headers;
}

export interface DpsService {
  server: RunningServer;
  url: string;
  idScope: string;
  dir: string;
  /** admin API call with the initial admin token (or `token`) */
  admin(method: string, path: string, body?: unknown, token?: string): Promise<Answer>;
  /** device API call: `path` relative to /{idScope}/registrations/ */
  device(method: string, path: string, body?: unknown, authorization?: string, idScope?: string): Promise<Answer>;
  /** device API call from another client address (a 127.0.0.0/8 address other than 127.0.0.1) */
  deviceFrom(localAddress: string, method: string, path: string, body?: unknown, authorization?: string): Promise<Answer>;
  close(): Promise<void>;
}

async function call(url: string, method: string, body: unknown, headers: Record<string, string>): Promise<Answer> {
  const r = await fetch(url, { method, headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : undefined, headers: r.headers };
}

/** An HTTP call whose connection comes from `localAddress`. */
function callFrom(localAddress: string, url: string, method: string, body: unknown, headers: Record<string, string>): Promise<Answer> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, { method, localAddress, headers: { ...(data !== undefined ? { "content-type": "application/json" } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") h.set(k, v);
        resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined, headers: h });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(data);
  });
}

/** Starts the service on `db` (127.0.0.1, a free port) with a key file in a temp folder. */
export async function startDps(db: string, o: Partial<ServeOptions> & { dir?: string } = {}): Promise<DpsService> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), "tpmtrust-dps-"));
  const server = await startServer({ db, listen: "127.0.0.1:0", logger: false, adminTokenFile: join(dir, "admin-token"), provisioningKeyFile: join(dir, "provisioning-key"), ...o });
  const token = readFileSync(join(dir, "admin-token"), "utf8").trim();
  const idScope = (await server.store.provisioning.getIdScope())!;
  return {
    server,
    url: server.url,
    idScope,
    dir,
    admin: (method, path, body, t) => call(`${server.url}${path}`, method, body, { authorization: `Bearer ${t ?? token}` }),
    device: (method, path, body, authorization, scope) => call(`${server.url}/${scope ?? idScope}/registrations/${path}`, method, body, authorization ? { authorization } : {}),
    deviceFrom: (from, method, path, body, authorization) => callFrom(from, `${server.url}/${idScope}/registrations/${path}`, method, body, authorization ? { authorization } : {}),
    async close() {
      await server.close();
      if (!o.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const b64 = (pub: TpmtPublic) => encodeTpm2bPublic(pub).toString("base64");

/** Enrolls a software device through the admin API. */
export async function enroll(s: DpsService, d: SoftDevice, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await s.admin("POST", "/v1/provisioning/enrollments", { registrationId: d.registrationId, endorsementKey: b64(d.ek), ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.json));
}

export interface Provisioned {
  key: Buffer;
  token: string;
  operationId: string;
  /** the operation status answer */
  result: any;
}

/** The whole device flow with a software device: challenge, unwrap, SAS, register, poll once. */
export async function provisionSoft(s: DpsService, d: SoftDevice, o: { payload?: unknown; style?: "c" | "dotnet" } = {}): Promise<Provisioned> {
  const path = `${d.registrationId}/register?${API_VERSION}`;
  const body = d.body(o.payload !== undefined ? { payload: o.payload } : {});
  const c = await s.device("PUT", path, body);
  assert.equal(c.status, 401, JSON.stringify(c.json));
  assert.equal(c.json.keyName, "registration");
  const key = d.unwrap(c.json.authenticationKey);
  const token = sasToken(key, s.idScope, d.registrationId, Math.floor(Date.now() / 1000) + 600, o.style);
  const r = await s.device("PUT", path, body, token);
  assert.equal(r.status, 202, JSON.stringify(r.json));
  assert.equal(r.json.status, "assigning");
  const op = await s.device("GET", `${d.registrationId}/operations/${r.json.operationId}?${API_VERSION}`, undefined, token);
  assert.equal(op.status, 200, JSON.stringify(op.json));
  return { key, token, operationId: r.json.operationId, result: op.json };
}

/** Asserts a DPS-shaped error: status, errorCode, trackingId, message, timestampUtc. */
export function assertDpsError(a: Answer, status: number, errorCode: number, message?: RegExp): void {
  assert.equal(a.status, status, JSON.stringify(a.json));
  assert.equal(a.json.errorCode, errorCode, JSON.stringify(a.json));
  assert.match(a.json.trackingId, /^[0-9a-f-]{36}$/);
  assert.ok(!Number.isNaN(Date.parse(a.json.timestampUtc)));
  assert.equal(typeof a.json.message, "string");
  assert.deepEqual(Object.keys(a.json).sort(), ["errorCode", "message", "timestampUtc", "trackingId"]);
  if (message) assert.match(a.json.message, message);
}
