/**
 * `tpmtrust agent acme`: an ACME client (RFC 8555) that answers device-attest-01 with this TPM
 * (draft-ietf-acme-device-attest, `tpm` format):
 *
 *   directory → newNonce → newAccount (ES256 account key kept in the state dir) → newOrder
 *   {permanent-identifier: host} → authorization → new key under the SRK → TPM2_Certify by the bound
 *   AK with qualifyingData = SHA-256(keyAuthorization) → challenge {attObj: CBOR {fmt: "tpm",
 *   attStmt: {ver, alg, x5c: [AK certificate], sig, certInfo, pubArea}}} → finalize with a CSR
 *   signed inside the TPM → certificate → <state-dir>/certs/<serial>/
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encode } from "cborg";
import { calculateJwkThumbprint, exportJWK, FlattenedSign, generateKeyPair, importJWK, type JWK } from "jose";
import type { Logger } from "pino";
import * as x509 from "@peculiar/x509";
import { certificatePem, decodeBase64, pemBlocks } from "../encoding.js";
import { isErrorCode, TpmTrustError, type ErrorCode } from "../errors.js";
import { TPM_ALG } from "../tpm/constants.js";
import { Certify, FlushContext, type TpmClient } from "../tpm/commands/index.js";
import { decodeTpm2bPublic } from "../tpm/structures.js";
import { withAk } from "./attest.js";
import { createTpmKey, storeCertificate, tpmCsr } from "./enroll-cert.js";
import { readState, type AgentState } from "./state.js";

export interface AcmeOptions {
  stateDir: string;
  /** the template's directory URL, e.g. https://ca.example/acme/tpm-client/directory */
  directory: string;
  /** the permanent-identifier to order (default: the registered host name) */
  identifier?: string;
  keyAlg?: "rsa" | "ecc";
  log?: Logger;
}

export interface AcmeResult {
  serial: string;
  order: string;
  identifier: string;
  dir: string;
}

const ACCOUNT_FILE = "acme-account.json";

interface Directory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
}

/** A problem document from the ACME server as a TpmTrustError (its tpmtrust code when it has one). */
function problem(status: number, body: unknown, what: string): TpmTrustError {
  const p = (body ?? {}) as { type?: string; detail?: string; code?: string };
  const code: ErrorCode = isErrorCode(p.code) ? p.code : "ERR_UNREACHABLE";
  return new TpmTrustError(code, `${what}: ${p.detail ?? `HTTP ${status}`}`, { status, ...(p.type ? { acme: p.type } : {}) });
}

/** The ACME account: an ES256 key kept in the state directory (mode 0600). */
async function accountKey(stateDir: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const path = join(stateDir, ACCOUNT_FILE);
  if (existsSync(path)) {
    const saved = JSON.parse(readFileSync(path, "utf8")) as { jwk: JWK };
    const { d: _d, ...pub } = saved.jwk;
    return { privateKey: (await importJWK(saved.jwk, "ES256")) as CryptoKey, jwk: pub };
  }
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const full = await exportJWK(privateKey);
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(path, JSON.stringify({ jwk: full }, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot write ${path}: ${(e as Error).message}`, { path });
  }
  const { d: _d, ...pub } = full;
  return { privateKey, jwk: pub };
}

class AcmeClient {
  private nonce?: string;
  kid?: string;
  constructor(
    private readonly dir: Directory,
    private readonly key: { privateKey: CryptoKey; jwk: JWK },
  ) {}

  private async freshNonce(): Promise<string> {
    if (this.nonce) {
      const n = this.nonce;
      this.nonce = undefined;
      return n;
    }
    const r = await fetch(this.dir.newNonce, { method: "HEAD" });
    const n = r.headers.get("replay-nonce");
    if (!n) throw new TpmTrustError("ERR_UNREACHABLE", "the ACME server gave no Replay-Nonce");
    return n;
  }

  /** A JWS POST (payload undefined: POST-as-GET); a badNonce answer is retried once with the nonce it carries. */
  async post(url: string, payload: unknown, what: string, retry = true): Promise<{ status: number; location: string | null; body: any; text: string }> {
    const header = { alg: "ES256", nonce: await this.freshNonce(), url, ...(this.kid ? { kid: this.kid } : { jwk: this.key.jwk }) };
    const jws = await new FlattenedSign(new TextEncoder().encode(payload === undefined ? "" : JSON.stringify(payload))).setProtectedHeader(header).sign(this.key.privateKey);
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/jose+json" }, body: JSON.stringify(jws) });
    this.nonce = r.headers.get("replay-nonce") ?? undefined;
    const text = await r.text();
    const body = r.headers.get("content-type")?.includes("json") && text ? JSON.parse(text) : undefined;
    if (r.status >= 400) {
      if (retry && body?.type === "urn:ietf:params:acme:error:badNonce") return this.post(url, payload, what, false);
      throw problem(r.status, body, what);
    }
    return { status: r.status, location: r.headers.get("location"), body, text };
  }

  thumbprint(): Promise<string> {
    return calculateJwkThumbprint(this.key.jwk, "sha256");
  }
}

/** COSE algorithm of the AK's signing scheme (ES256 for ECDSA-SHA256, RS256 for RSASSA-SHA256). */
function coseAlg(s: AgentState): number {
  const ak = decodeTpm2bPublic(decodeBase64(s.akPublic, "akPublic"));
  if (ak.type === TPM_ALG.ECC) return -7;
  if (ak.type === TPM_ALG.RSA && ak.parameters.scheme.scheme === TPM_ALG.RSAPSS) return -37;
  return -257;
}

/** The device-attest-01 `tpm` attestation object for the loaded key at `keyHandle`: TPM2_Certify by the bound AK over SHA-256(keyAuthorization). */
export async function deviceAttestObject(tpm: TpmClient, state: AgentState, key: { handle: number; publicArea: Buffer }, keyAuthorization: string): Promise<Buffer> {
  if (!state.akCertificate) throw new TpmTrustError("ERR_USAGE", "the activated AK has no AK certificate (x5c needs one): run `tpmtrust agent activate` again");
  const extraData = createHash("sha256").update(keyAuthorization).digest();
  const certify = await withAk(tpm, state, (ak) => tpm.run(Certify, { objectHandle: key.handle, signHandle: ak, qualifyingData: extraData }));
  const attStmt = { ver: "2.0", alg: coseAlg(state), x5c: [decodeBase64(state.akCertificate, "akCertificate")], sig: certify.signatureBytes, certInfo: certify.attest, pubArea: key.publicArea };
  return Buffer.from(encode({ fmt: "tpm", attStmt }));
}

export async function acmeEnroll(tpm: TpmClient, o: AcmeOptions): Promise<AcmeResult> {
  const state = readState(o.stateDir);
  if (!state.akCertificate) throw new TpmTrustError("ERR_USAGE", "the activated AK has no AK certificate (x5c needs one): run `tpmtrust agent activate` again");
  const identifier = o.identifier ?? state.host;
  const alg = o.keyAlg ?? "ecc";
  const dirRes = await fetch(o.directory).catch((e: Error) => {
    throw new TpmTrustError("ERR_UNREACHABLE", `${o.directory} is unreachable: ${e.message}`);
  });
  const dirBody = (await dirRes.json().catch(() => undefined)) as Directory | undefined;
  if (!dirRes.ok || !dirBody?.newOrder) throw problem(dirRes.status, dirBody, "ACME directory");
  const client = new AcmeClient(dirBody, await accountKey(o.stateDir));
  const acct = await client.post(dirBody.newAccount, { termsOfServiceAgreed: true }, "newAccount");
  if (!acct.location) throw new TpmTrustError("ERR_UNREACHABLE", "newAccount answered without the account URL");
  client.kid = acct.location;
  const ord = await client.post(dirBody.newOrder, { identifiers: [{ type: "permanent-identifier", value: identifier }] }, "newOrder");
  const orderUrl = ord.location!;
  const authz = (await client.post(ord.body.authorizations[0], undefined, "authorization")).body;
  const challenge = (authz.challenges as { type: string; url: string; token: string }[]).find((c) => c.type === "device-attest-01");
  if (!challenge) throw new TpmTrustError("ERR_UNREACHABLE", "the authorization offers no device-attest-01 challenge");
  const keyAuthorization = `${challenge.token}.${await client.thumbprint()}`;
  const key = await createTpmKey(tpm, alg);
  try {
    const attObj = await deviceAttestObject(tpm, state, { handle: key.handle, publicArea: key.created.publicArea }, keyAuthorization);
    const answered = (await client.post(challenge.url, { attObj: attObj.toString("base64url") }, "device-attest-01")).body;
    if (answered.status !== "valid") throw problem(400, answered.error, "device-attest-01 was rejected");
    o.log?.info({ identifier, order: orderUrl }, "device-attest-01 valid; finalizing");
    const csr = await tpmCsr(tpm, key.handle, key.created.public, { subject: `CN=${identifier}` });
    const fin = (await client.post(ord.body.finalize, { csr: csr.toString("base64url") }, "finalize")).body;
    if (fin.status !== "valid" || !fin.certificate) throw problem(400, fin.error, `the order is ${fin.status}`);
    const chainPem = (await client.post(fin.certificate, undefined, "certificate")).text;
    const pems = pemBlocks(chainPem)
      .filter((b) => b.label === "CERTIFICATE")
      .map((b) => certificatePem(b.der));
    const leaf = pems[0];
    if (!leaf) throw new TpmTrustError("ERR_UNREACHABLE", "the certificate download holds no certificate");
    const serial = new x509.X509Certificate(leaf).serialNumber.toLowerCase();
    const dir = storeCertificate(o.stateDir, {
      serial,
      certificatePem: leaf,
      chainPem: pems.slice(1).join(""),
      key: key.created,
      meta: { acmeOrder: orderUrl, identifier, keyAlg: alg },
    });
    return { serial, order: orderUrl, identifier, dir };
  } finally {
    await tpm.run(FlushContext, { flushHandle: key.handle }).catch(() => undefined);
  }
}
