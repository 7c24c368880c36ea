/**
 * End-to-end pieces: the real service over HTTP on 127.0.0.1 (in-process `startServer`), a swtpm
 * host whose PCRs hold a real event log's digests, the `tpmtrust` CLI as operators and agents run
 * it, and token checks through the service's JWKS.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import { evidenceBody, quotePcrs, readState, ServiceClient } from "../../src/agent/index.js";
import type { AttestConfig } from "../../src/attest/config.js";
import type { EvidenceBody } from "../../src/attest/evidence.js";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { hashAlgByName } from "../../src/tpm/constants.js";
import { TpmClient } from "../../src/tpm/commands/index.js";
import { pcrSelection } from "../../src/tpm/structures.js";
import { openTransport } from "../../src/tpm/transport/index.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { extendLog, readLog } from "../helpers/attest-host.js";
import { cli, type CliResult } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";

export { readLog, EVENTLOGS } from "../helpers/attest-host.js";

export interface Service {
  url: string;
  /** an admin API token of the service's database */
  admin: string;
  server: RunningServer;
  close(): Promise<void>;
}

let instances = 0;

/**
 * Starts the service on 127.0.0.1:0 over `db`. The first start on a database writes the initial
 * admin token into `dir`; a further instance on the same database reuses `admin`.
 */
export async function startService(dir: string, db: string, o: { admin?: string; attest?: Partial<AttestConfig>; tls?: { cert: Buffer; key: Buffer } } = {}): Promise<Service> {
  mkdirSync(dir, { recursive: true });
  const adminTokenFile = join(dir, `admin-token-${++instances}`);
  // hosts attest once and tests may run for minutes on a loaded machine: no host turns silent, and no
  // token expires, while a test runs unless the test asks for it
  const attest = { intervalMs: 3_600_000, tokenTtlMs: 3_600_000, ...o.attest };
  const server = await startServer({ db, listen: "127.0.0.1:0", logger: false, adminTokenFile, attest, tls: o.tls });
  const admin = o.admin ?? (server.adminTokenFile ? readFileSync(server.adminTokenFile, "utf8").trim() : undefined);
  if (!admin) throw new Error("no admin token: pass the first instance's token");
  return { url: server.url, admin, server, close: () => server.close() };
}

export interface Answer {
  status: number;
  body: any;
}

/** One JSON call; `token` goes as Bearer. */
export async function api(base: string, method: string, path: string, body?: unknown, token?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/** Imports a swtpm local CA (root, then intermediate) as EK trust anchors through the API. */
export async function trustSwtpmCa(s: Service, tpm: Swtpm): Promise<void> {
  const der = (pem: string) => Buffer.from(new X509Certificate(pem).raw).toString("base64");
  for (const [kind, pem] of [
    ["root", tpm.ca!.rootPem],
    ["intermediate", tpm.ca!.intermediatePem],
  ] as const) {
    const r = await api(s.url, "POST", "/v1/trust/cas", { certificates: [der(pem)], kind }, s.admin);
    if (r.status !== 201) throw new Error(`trust ${kind}: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

/** Adds a policy document (e.g. from `tpmtrust policy baseline create`) for a hardware class. */
export async function addPolicy(s: Service, kind: string, name: string, hardwareClass: string, document: unknown, policyVersion = "v2"): Promise<Answer> {
  return api(s.url, "POST", "/v1/policies", { kind, name, hardwareClass, policyVersion, document }, s.admin);
}

export interface LogHost {
  swtpm: Swtpm;
  tpm: TpmClient;
  log: Buffer;
  close(): Promise<void>;
}

/**
 * A host whose swtpm PCRs were extended with `logFile`'s digests in every bank the log carries
 * (swtpm started with exactly those banks), with EK certificates from the local CA unless `ekCerts` is false.
 */
export async function startLogHost(logFile: string, o: { ekCerts?: boolean } = {}): Promise<LogHost> {
  const log = readLog(logFile);
  const parsed = parseEventLog(log);
  const swtpm = await startSwtpm({ ekCerts: o.ekCerts ?? true, pcrBanks: parsed.algorithms.map((a) => a.bank) });
  const tpm = new TpmClient(await openTransport(swtpm.tcti));
  try {
    await extendLog(tpm, parsed);
  } catch (e) {
    await swtpm.stop();
    throw e;
  }
  return {
    swtpm,
    tpm,
    log,
    async close() {
      await tpm.close().catch(() => undefined);
      await swtpm.stop();
    },
  };
}

/**
 * What the agent sends for a challenge from `base`, built with the agent's own pieces but without
 * posting it: quotes by the AK registered in `stateDir` (at its persistent handle) and `eventLog`.
 */
export async function evidenceFor(base: string, tpm: TpmClient, stateDir: string, eventLog?: Buffer): Promise<EvidenceBody> {
  const s = readState(stateDir);
  const c = await new ServiceClient({ url: base }).post<{ nonceHex: string; pcrSelection: { bank: string; pcrs: number[] }[] }>("/v1/attestations/challenge", { akNameHex: s.akNameHex });
  const selection = c.pcrSelection.map((x) => pcrSelection(hashAlgByName(x.bank)!, x.pcrs));
  return evidenceBody(s.akNameHex, c.nonceHex, await quotePcrs(tpm, s.akHandle!, Buffer.from(c.nonceHex, "hex"), selection), eventLog);
}

/** `tpmtrust agent …` (the CLI as a separate process). */
export function agent(args: string[]): Promise<CliResult> {
  return cli(["agent", ...args]);
}

/** Verifies an attestation token with the service's JWKS (ES256), as a relying party would. */
export async function verifyToken(base: string, jwt: string): Promise<JWTPayload & Record<string, any>> {
  const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
  const { payload, protectedHeader } = await jwtVerify(jwt, jwks, { algorithms: ["ES256"] });
  if (!protectedHeader.kid) throw new Error("token without kid");
  return payload;
}

/** Explains a failed CLI run in an assertion message. */
export const out = (r: CliResult): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
