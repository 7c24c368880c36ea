/**
 * The setting of the CMC round-trip tests (test/ca/cmc*.test.ts): the real service over HTTP on
 * 127.0.0.1 with a CA, a template for Windows requests, and two Windows-shaped clients made of
 * tpm2-tools + openssl (test/helpers/windows-client.ts) on swtpm — A with an EK certificate from a
 * trusted CA, B with neither certificate nor allow-list entry.
 */
import "reflect-metadata";
import assert from "node:assert/strict";
import { AsnParser } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initCa } from "../../src/ca/authority.js";
import { CA_OID } from "../../src/ca/oids.js";
import { CMCStatusInfo, PKIResponse } from "../../src/verify/cmc.js";
import { startSwtpm, type Swtpm } from "./swtpm.js";
import { bmp, cmcRequest, octets, readCmcResponse, WindowsClient, type TpmKey } from "./windows-client.js";
import { api, startService, trustSwtpmCa, type Service } from "../e2e/harness.js";

const OID = { extReq: "1.2.840.113549.1.9.14" };
/** openssl's names of the content ciphers szOID_ENROLL_ENCRYPTION_ALGORITHM may name */
export const CIPHERS: Record<string, string> = { "2.16.840.1.101.3.4.1.42": "-aes256", "2.16.840.1.101.3.4.1.2": "-aes128" };

export interface CmcSetting {
  dir: string;
  svc: Service;
  a: WindowsClient;
  b: WindowsClient;
  xchgPem: string;
  rootPem: string;
  ekCertA: Buffer;
  close(): Promise<void>;
}

let dir: string;
let svc: Service;
let xchgPem: string;
let rootPem: string;

function templateExt(name: string): Buffer {
  const oid = Buffer.from("06092b0601040182371402", "hex");
  const val = octets(bmp(name));
  const ext = Buffer.concat([Buffer.from([0x30, oid.length + val.length]), oid, val]);
  return Buffer.concat([Buffer.from([0x30, ext.length]), ext]);
}

export interface Sent {
  status: number;
  body: Buffer;
  headers: Headers;
}

export async function post(body: Buffer | string, o: { requestId?: number; token?: string; query?: string } = {}): Promise<Sent> {
  const q = [o.requestId !== undefined ? `requestId=${o.requestId}` : "", o.query ?? ""].filter(Boolean).join("&");
  const headers: Record<string, string> = { "content-type": "application/pkcs7-mime" };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  const r = await fetch(`${svc.url}/v1/ca/cmc${q ? `?${q}` : ""}`, { method: "POST", headers, body: typeof body === "string" ? body : new Uint8Array(body) });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
}

export function problem(r: Sent, status: number, code: string): any {
  const j = JSON.parse(r.body.toString());
  assert.equal(r.status, status, JSON.stringify(j));
  assert.equal(j.code, code, JSON.stringify(j));
  return j;
}

/** The initial request of `c` for a fresh key: KAST, EK info (to `recipientPem`, with `ekSpki`/`ekCert`), in CMC. */
export async function initial(c: WindowsClient, o: { recipientPem?: string; ekSpki?: Buffer; ekCert?: Buffer; key?: TpmKey; template?: string } = {}): Promise<{ request: Buffer; key: TpmKey }> {
  const key = o.key ?? (await c.newKey(`k${Math.random().toString(16).slice(2, 8)}`));
  const csr = await c.csr(key, "CN=win11.example.test", [
    { type: OID.extReq, values: [templateExt(o.template ?? "WinTpm")] },
    { type: CA_OID.attestationStatement, values: [octets(await c.statement(key))] },
    { type: CA_OID.ekInfo, values: [await c.ekInfo(o.recipientPem ?? xchgPem, o.ekSpki ?? c.ekSpki, o.ekCert)] },
  ]);
  return { request: await cmcRequest(c.dir, csr), key };
}

/** The initial request of `c` for a fresh key with the AIK info (MS-WCCE 2.2.2.7.15) instead of the EK info: KAST (or `statement`'s), AIKpub (or `aikSpki`) and `aikCert`, in CMC. */
export async function aikRequest(c: WindowsClient, o: { subject?: string; aikCert?: Buffer; aikSpki?: Buffer; key?: TpmKey; statement?: (key: TpmKey) => Promise<Buffer> } = {}): Promise<{ request: Buffer; key: TpmKey }> {
  const key = o.key ?? (await c.newKey(`k${Math.random().toString(16).slice(2, 8)}`));
  const csr = await c.csr(key, o.subject ?? "CN=win11.example.test", [
    { type: OID.extReq, values: [templateExt("WinTpm")] },
    { type: CA_OID.attestationStatement, values: [octets(await (o.statement ?? ((k) => c.statement(k)))(key))] },
    { type: CA_OID.aikInfo, values: [await c.aikInfo(xchgPem, o.aikCert, o.aikSpki)] },
  ]);
  return { request: await cmcRequest(c.dir, csr), key };
}

/**
 * Registers `c`'s TPM as host `name` (POST /v1/hosts: v2 with `ekCert`, or v1 with its EK hash
 * allow-listed in the same step) and activates its AIK as tpmtrust's agent would (POST
 * /v1/activations, tpm2_activatecredential): the AK certificate of tpmtrust's attestation CA.
 */
export async function activateAik(c: WindowsClient, name: string, ekCert?: Buffer): Promise<Buffer> {
  const b64 = (b: Buffer) => b.toString("base64");
  const ekPub = readFileSync(c.f("ek.pub"));
  const identity = { ekPublics: [{ alg: "rsa2048", public: b64(ekPub) }], ekCertificates: ekCert ? [b64(ekCert)] : [], tpm: { manufacturer: "IBM", vendor: "SW   TPM", firmware: "1.0" } };
  const h = await api(svc.url, "POST", "/v1/hosts", { name, hardwareClass: "win11", identity, ...(ekCert ? {} : { policyVersion: "v1", allowlistEk: true }) }, svc.admin);
  assert.equal(h.status, 201, JSON.stringify(h.body));
  const start = await api(svc.url, "POST", "/v1/activations", { ekPublic: b64(ekPub), akPublic: b64(c.aik.pub), ...(ekCert ? { ekCertificates: [b64(ekCert)] } : {}) });
  assert.equal(start.status, 201, JSON.stringify(start.body));
  const secret = await c.activate(Buffer.from(start.body.credentialBlob, "base64"), Buffer.from(start.body.encryptedSecret, "base64"));
  const done = await api(svc.url, "POST", `/v1/activations/${start.body.activationId}`, { secret: b64(secret) });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  return Buffer.from(done.body.akCertificate, "base64");
}

export interface Challenge {
  requestId: number;
  challenge: Buffer;
  cipher: string;
  xchgHash: Buffer;
  certificatesPem: string;
}

/** Reads the pending CMC response as the client does (signature checked by openssl). */
export async function readChallenge(c: WindowsClient, r: Sent): Promise<Challenge> {
  assert.equal(r.status, 202, r.body.toString());
  const { pkiResponse, certificatesPem } = await readCmcResponse(c.dir, r.body, rootPem);
  const resp = AsnParser.parse(pkiResponse, PKIResponse);
  const attr = (oid: string) => Buffer.from(resp.controlSequence.find((t) => t.attrType === oid)!.attrValues[0]);
  const status = AsnParser.parse(attr("1.3.6.1.5.5.7.7.1"), CMCStatusInfo);
  assert.equal(status.cMCStatus, 3, "status pending");
  const requestId = Buffer.from(status.otherInfo!.pendInfo!.pendToken).readUInt32BE(0);
  assert.equal(r.headers.get("tpmtrust-request-id"), String(requestId));
  const octetsOf = (der: Buffer) => der.subarray(der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2);
  return {
    requestId,
    challenge: octetsOf(attr(CA_OID.attestationChallenge)),
    cipher: AsnParser.parse(attr(CA_OID.encryptionAlgorithm), AlgorithmIdentifier).algorithm,
    xchgHash: octetsOf(attr(CA_OID.xchgCertHash)),
    certificatesPem,
  };
}

/** Starts the setting (one per test file). */
export async function setup(): Promise<CmcSetting> {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-cmc-"));
  const [tpmA, tpmB] = await Promise.all([startSwtpm({ ekCerts: true }), startSwtpm()]);
  for (const d of ["a", "b"]) mkdirSync(join(dir, d));
  const a = await new WindowsClient(tpmA, join(dir, "a")).init();
  const b = await new WindowsClient(tpmB, join(dir, "b")).init();
  svc = await startService(dir, join(dir, "db.sqlite"), { attest: { sweepMs: 0 } });
  await trustSwtpmCa(svc, tpmA);
  await initCa(svc.server.store, { actor: "test", now: Date.now(), keyDir: join(dir, "ca-keys") });
  const t = await api(
    svc.url,
    "POST",
    "/v1/ca/templates",
    { name: "WinTpm", subjectFrom: "request", requesters: { anonymous: true }, keyAttestation: { mode: "required", trustModels: ["ek-cert", "ek-key"] } },
    svc.admin,
  );
  assert.equal(t.status, 201, JSON.stringify(t.body));
  const chain = await (await fetch(`${svc.url}/v1/ca/xchg`)).text();
  xchgPem = chain.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/)![0] + "\n";
  rootPem = (await (await fetch(`${svc.url}/v1/ca/certs/ca`)).text()).match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)![1] + "\n";
  const ekCertA = await a.ekCertificate();
  return {
    dir,
    svc,
    a,
    b,
    xchgPem,
    rootPem,
    ekCertA,
    async close() {
      await svc.close();
      await Promise.all([tpmA.stop(), tpmB.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

