/**
 * The negative corpus: attacks on every flow of the real service over HTTP, one table, each case
 * asserting the exact reason code it must be refused with (and, for attestations, that a forged or
 * replayed quote never changes the victim host's health). Evidence is built in software with the
 * exact TPM formats (test/helpers/software-fleet.ts), so every field can be forged precisely.
 */
import { setTimeout as delay } from "node:timers/promises";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, generateKeyPairSync, webcrypto } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { calculateJwkThumbprint, exportJWK, FlattenedSign, generateKeyPair, SignJWT } from "jose";
import { encode as cbor } from "cborg";
import { NONCE_PURPOSE } from "../../src/attest/challenge.js";
import { signingKeyTemplate } from "../../src/agent/enroll-cert.js";
import { attestationCa, recordAkCertificate, signAkCertificate } from "../../src/ca/ak-ca.js";
import { initCa } from "../../src/ca/authority.js";
import { putTemplate } from "../../src/ca/templates.js";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { akTemplate } from "../../src/tpm/commands/ak.js";
import { TPM_ALG, TPM_ST, TPMA_OBJECT } from "../../src/tpm/constants.js";
import { decodeTpmtPublic, encodeTpmsAttest, encodeTpmtPublic, encodeTpmtSignature, objectName } from "../../src/tpm/structures.js";
import type { TpmsAttest, TpmtPublic } from "../../src/tpm/types.js";
import { addPolicy } from "../../src/attest/policies.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { FIXTURES } from "./parsers.js";
import { testEkCertificate } from "../helpers/ek-trust.js";
import { sasToken, softDevice, softSrk } from "../helpers/soft-device.js";
import { rawSql } from "../helpers/store.js";
import { encodeTpm2bPublic } from "../../src/tpm/structures.js";
import { Reader } from "../../src/tpm/marshal.js";
import { eccEk, openOuterWrap, recoverSeed } from "../crypto/unwrap.js";
import { addFleetBaseline, fleetPcrs, FLEET_LOG, identityOf, quoteAttest, seedHosts, signEcdsa, softHost, type SoftHost } from "../helpers/software-fleet.js";
import { constants as cryptoConstants, privateEncrypt } from "node:crypto";
import { addImaClass, IMA_BOOT, imaEvidence, imaEvil, imaHost as imaHostIn, imaList, type ImaRound } from "../helpers/ima-fleet.js";
import { entry, sigField, type Built } from "../verify/ima-build.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-attacks-"));
/** a folder outside the key directory */
const outside = mkdtempSync(join(tmpdir(), "tpmtrust-attacks-outside-"));
let s: RunningServer;
let admin: string;
let auditor: string;
let revoked: string;
/** enroller tokens: one a template names, one it does not */
let opsEnroller: string;
let intruderEnroller: string;
/** hosts with bound AKs and the fleet baseline */
let alice: SoftHost;
let bob: SoftHost;
/** a bound host of a hardware class without a baseline */
let orphan: SoftHost;
/** a host whose EK is allow-listed but who is not registered */
let newcomer: SoftHost;
/** a bound host whose EK is allow-listed (trusted for ek-key): enrols attested certificates */
let certee: SoftHost;
/** its AK certificate from the attestation CA (x5c[0] of device-attest-01) */
let certeeAkCert: Buffer;
/** a v2 host stored without any EK certificate */
let certless: SoftHost;
const LAPTOP_LOG = readFileSync(join(FIXTURES, "eventlogs", "laptop-startup-locality3.bin"));
const INFINEON_CERT = readFileSync(join(FIXTURES, "ek-certs", "infineon_rsa_ek.der")).toString("base64");

interface Answer {
  status: number;
  body: any;
}

async function call(method: string, path: string, body?: unknown, token?: string, raw?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = token.startsWith("SharedAccessSignature") ? token : `Bearer ${token}`;
  if (body !== undefined || raw !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${s.url}${path}`, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/** A call whose connection comes from `localAddress` (another 127.0.0.0/8 address: another client). */
function callFrom(localAddress: string, method: string, path: string, body?: unknown, authorization?: string): Promise<Answer & { headers: Record<string, unknown> }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers = { ...(data !== undefined ? { "content-type": "application/json" } : {}), ...(authorization ? { authorization } : {}) };
  return new Promise((resolve, reject) => {
    const req = request(`${s.url}${path}`, { method, localAddress, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined, headers: res.headers });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(data);
  });
}

const b64 = (b: Buffer) => b.toString("base64");
const tpm2b = (b: Buffer) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);

// ---- attestation evidence, forged field by field

interface Forge {
  host?: SoftHost;
  /** change the TPMS_ATTEST before it is signed */
  attest?: (a: TpmsAttest) => TpmsAttest;
  /** change the encoded bytes before signing (the AK signs malformed bytes) */
  signed?: (b: Buffer) => Buffer;
  /** change the signed bytes after signing */
  bytes?: (b: Buffer) => Buffer;
  /** the TPMT_SIGNATURE to send, from the attest bytes (default: ECDSA by the host's AK) */
  sign?: (b: Buffer, h: SoftHost) => Buffer;
  /** change the request body last */
  body?: (body: Record<string, any>) => void;
  /** a nonce other than a fresh challenge's */
  nonce?: () => Promise<Buffer>;
}

async function freshNonce(h: SoftHost): Promise<Buffer> {
  const c = await call("POST", "/v1/attestations/challenge", { akNameHex: h.akName.toString("hex") });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  return Buffer.from(c.body.nonceHex, "hex");
}

async function evidence(f: Forge = {}): Promise<Record<string, any>> {
  const h = f.host ?? alice;
  const nonce = f.nonce ? await f.nonce() : await freshNonce(h);
  const signed = (f.signed ?? ((b) => b))(encodeTpmsAttest((f.attest ?? ((a) => a))(quoteAttest(h, nonce))));
  const signature = f.sign ? f.sign(signed, h) : signEcdsa(h.akKey, signed);
  const body: Record<string, any> = {
    akNameHex: h.akName.toString("hex"),
    nonceHex: nonce.toString("hex"),
    quotes: [{ attest: b64(f.bytes ? f.bytes(signed) : signed), signature: b64(signature) }],
    pcrs: fleetPcrs(),
    eventLog: b64(FLEET_LOG),
  };
  f.body?.(body);
  return body;
}

const attestWith = async (f: Forge = {}) => call("POST", "/v1/attestations", await evidence(f));

/** Flips one bit of a copy. */
const flip = (b: Buffer, at: number) => {
  const c = Buffer.from(b);
  c[at < 0 ? c.length + at : at] ^= 0x01;
  return c;
};

/** A log whose event at `index` has one digest byte flipped (crypto-agile event layout walked minimally). */
function tamperedLog(): Buffer {
  // the last 32 bytes before the final event data are not guaranteed digests; flip inside the first
  // EV_POST_CODE-class region instead: the log's second event starts after the Spec ID event
  const log = Buffer.from(FLEET_LOG);
  const specSize = log.readUInt32LE(28);
  const second = 32 + specSize; // TCG_PCR_EVENT header (32 bytes) + Spec ID event data
  // TCG_PCR_EVENT2: pcr u32, type u32, count u32, then alg u16 + digest
  log[second + 12 + 2] ^= 0xff;
  return log;
}

function akLike(mutate: (t: TpmtPublic) => TpmtPublic): Buffer {
  const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });
  const t = akTemplate({ type: "ecc" });
  return tpm2b(encodeTpmtPublic(mutate({ ...t, unique: { x: Buffer.from(key.x!, "base64url"), y: Buffer.from(key.y!, "base64url") } } as TpmtPublic)));
}

const without = (t: TpmtPublic, attr: number): TpmtPublic => ({ ...t, objectAttributes: t.objectAttributes & ~attr });
const withAttr = (t: TpmtPublic, attr: number): TpmtPublic => ({ ...t, objectAttributes: t.objectAttributes | attr });

// ---- certificate enrolment: CSRs of software keys, TPM2_Certify of them by a host's AK

/** A software P-256 key with the TPMT_PUBLIC of a TPM-bound signing key. */
async function softKey(): Promise<{ keys: CryptoKeyPair; pub: TpmtPublic }> {
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = await webcrypto.subtle.exportKey("jwk", keys.publicKey);
  return { keys, pub: { ...signingKeyTemplate("ecc"), unique: { x: Buffer.from(jwk.x!, "base64url"), y: Buffer.from(jwk.y!, "base64url") } } as TpmtPublic };
}

async function csrOf(keys: CryptoKeyPair, name: x509.JsonName, dns: string[] = []): Promise<string> {
  const extensions = dns.length ? [new x509.SubjectAlternativeNameExtension(dns.map((value) => ({ type: "dns" as const, value })))] : [];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name, keys, extensions, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams });
  return b64(Buffer.from(csr.rawData));
}

/** A CSR without attestation. */
const enrolPlain = async (template: string, name: x509.JsonName, o: { dns?: string[]; token?: string } = {}) =>
  call("POST", "/v1/ca/enroll", { template, csr: await csrOf((await softKey()).keys, name, o.dns) }, o.token);

/** A CSR whose key `h`'s AK certified (TPM2_Certify over a fresh enrolment nonce). */
async function enrolAttested(h: SoftHost, template: string, name: x509.JsonName, o: { dns?: string[]; token?: string } = {}): Promise<Answer> {
  const k = await softKey();
  const nonce = Buffer.from((await call("POST", "/v1/ca/challenge", {})).body.nonceHex, "hex");
  const { attest, signature } = certifyBy(h, k.pub, nonce);
  const attestation = { keyPublic: b64(tpm2b(encodeTpmtPublic(k.pub))), certify: { attest: b64(attest), signature: b64(signature) }, akNameHex: h.akName.toString("hex") };
  return call("POST", "/v1/ca/enroll", { template, csr: await csrOf(k.keys, name, o.dns), attestation }, o.token);
}

/** The TPMS_ATTEST of a TPM2_Certify of `key` by `h`'s AK with `extraData`, and its TPMT_SIGNATURE. */
function certifyBy(h: SoftHost, key: TpmtPublic, extraData: Buffer): { attest: Buffer; signature: Buffer } {
  const attest = encodeTpmsAttest({
    magic: 0xff544347,
    type: TPM_ST.ATTEST_CERTIFY,
    qualifiedSigner: h.akName,
    extraData,
    clockInfo: { clock: 1234n, resetCount: 7, restartCount: 0, safe: true },
    firmwareVersion: 1n,
    attested: { name: objectName(key), qualifiedName: objectName(key) },
  } as TpmsAttest);
  return { attest, signature: signEcdsa(h.akKey, attest) };
}

/** An ACME client with a fresh account key: POSTs signed JWS (jwk until `kid` is set, RFC 8555 §6.2). */
async function acmeClient() {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = await exportJWK(publicKey);
  const c = {
    jwk,
    kid: undefined as string | undefined,
    dir: (await (await fetch(`${s.url}/acme/t-acme/directory`)).json()) as Record<string, string>,
    async post(url: string, payload: unknown) {
      const nonce = (await fetch(`${s.url}/acme/new-nonce`, { method: "HEAD" })).headers.get("replay-nonce")!;
      const jws = await new FlattenedSign(new TextEncoder().encode(payload === undefined ? "" : JSON.stringify(payload))).setProtectedHeader({ alg: "ES256", nonce, url, ...(c.kid ? { kid: c.kid } : { jwk }) }).sign(privateKey);
      const r = await fetch(url, { method: "POST", headers: { "content-type": "application/jose+json" }, body: JSON.stringify(jws) });
      const text = await r.text();
      return { status: r.status, location: r.headers.get("location"), body: text ? JSON.parse(text) : undefined };
    },
  };
  return c;
}

/** ACME with device-attest-01 by certee's AK up to a ready order: the client, the order's URLs and a CSR maker for the attested key. */
async function acmeReady() {
  const c = await acmeClient();
  c.kid = (await c.post(c.dir.newAccount, { termsOfServiceAgreed: true })).location!;
  const order = await c.post(c.dir.newOrder, { identifiers: [{ type: "permanent-identifier", value: certee.name }] });
  assert.equal(order.status, 201, JSON.stringify(order.body));
  const authz = (await c.post(order.body.authorizations[0], undefined)).body;
  const challenge = authz.challenges[0];
  const k = await softKey();
  const cert = certifyBy(certee, k.pub, createHash("sha256").update(`${challenge.token}.${await calculateJwkThumbprint(c.jwk, "sha256")}`).digest());
  const attObj = cbor({ fmt: "tpm", attStmt: { ver: "2.0", alg: -7, x5c: [certeeAkCert], sig: cert.signature, certInfo: cert.attest, pubArea: encodeTpmtPublic(k.pub) } });
  const answered = await c.post(challenge.url, { attObj: Buffer.from(attObj).toString("base64url") });
  assert.equal(answered.body.status, "valid", JSON.stringify(answered.body));
  return { client: c, order: order.location!, finalize: order.body.finalize as string, csr: async (name: x509.JsonName, dns: string[] = []) => Buffer.from(await csrOf(k.keys, name, dns), "base64").toString("base64url") };
}

/** ACME up to a ready order, then finalize with a CSR naming `name` (RFC 8555 §7.4). */
async function acmeFinalize(name: x509.JsonName, dns: string[] = []): Promise<Answer> {
  const r = await acmeReady();
  return r.client.post(r.finalize, { csr: await r.csr(name, dns) });
}

// ---- key servers: files named by an admin

const addServer = (name: string, kind: string, config: Record<string, unknown>) => call("POST", "/v1/keys/servers", { name, kind, config }, admin);
const hsmSettings = { module: "/usr/lib/softhsm/libsofthsm2.so", slot: 0, pinEnv: "TPMTRUST_NO_SUCH_PIN" };
const kmipSettings = { host: "127.0.0.1", port: 5696, ca: join(dir, "kms-ca.pem"), cert: join(dir, "client.pem"), key: join(dir, "client.key") };
/** An existing file outside the key directory (the attacks' database folder). */
function outsideFile(): string {
  const path = join(outside, "libprobe.so");
  writeFileSync(path, "not a library");
  return path;
}

interface Attack {
  flow: string;
  name: string;
  code: string;
  /** the HTTP status the code maps to (attestation verdicts: 200 with verdict "fail") */
  status?: number;
  run: () => Promise<Answer>;
}

/** A correct quote of PCRs 0–6 only (selection and digest agree), one PCR short of the policy's. */
const PCR_SELECT_0_6 = (a: TpmsAttest): TpmsAttest => {
  const q = a.attested as { pcrSelect: { hash: number; select: Buffer }[]; pcrDigest: Buffer };
  const values = fleetPcrs();
  const banks = Object.keys(values);
  const digest = createHash("sha256").update(Buffer.concat(banks.flatMap((b) => [0, 1, 2, 3, 4, 5, 6].map((p) => Buffer.from(values[b][String(p)], "hex"))))).digest();
  return { ...a, attested: { pcrSelect: q.pcrSelect.map((p) => ({ ...p, select: Buffer.from([0x7f, 0, 0]) })), pcrDigest: digest } } as TpmsAttest;
};

// ---- IMA: increments of a host's measurement list against the running PCR 10 of its boot

const IMA_CLASS = "ima-n1";
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest();

let imaClass: Promise<void> | undefined;
/** A host of its own (its own IMA state) in the class whose policies are the fleet baseline and a runtime policy (test/helpers/ima-fleet.ts). */
async function imaHost(name: string): Promise<SoftHost> {
  imaClass ??= addImaClass(s.store, IMA_CLASS);
  await imaClass;
  return imaHostIn(s.store, name, IMA_CLASS);
}

/** An attestation with a fresh nonce: a quote over the fleet's PCRs 0–7 and PCR 10 as `o.extended` left it, with the increment `o.sent`. */
async function imaAttest(h: SoftHost, o: ImaRound): Promise<Answer> {
  return call("POST", "/v1/attestations", imaEvidence(h, await freshNonce(h), o));
}

/** A host whose whole boot list so far passed (the control of each IMA attack). */
async function imaVerified(name: string, extended: Built[] = IMA_BOOT): Promise<SoftHost> {
  const h = await imaHost(name);
  const r = await imaAttest(h, { extended, sent: imaList(extended), startIndex: 0 });
  assert.deepEqual([r.body.verdict, r.body.ima?.nextIndex], ["pass", extended.length], JSON.stringify(r.body).slice(0, 600));
  return h;
}

/** An ima-sig entry signed (RSA PKCS#1 v1.5 over the file digest, signature_v2_hdr) by a key no policy trusts. */
function imaSignedByStranger(path: string): Built {
  const digest = sha256(`signed ${path}`);
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const info = Buffer.concat([Buffer.from("3031300d060960864801650304020105000420", "hex"), digest]);
  const sig = privateEncrypt({ key: privateKey, padding: cryptoConstants.RSA_PKCS1_PADDING }, info);
  return entry({ template: "ima-sig", path, digest, sig: sigField(4, Buffer.from("0badf00d", "hex"), sig) });
}

const ATTACKS: Attack[] = [
  // -- attestation: the nonce
  { flow: "attestation", name: "a nonce the service never issued", code: "ERR_NONCE_UNKNOWN", run: () => attestWith({ nonce: async () => Buffer.alloc(32, 7) }) },
  { flow: "attestation", name: "body nonce differs from the quoted extraData", code: "ERR_NONCE_MISMATCH", run: () => attestWith({ body: (b) => (b.nonceHex = "ab".repeat(32)) }) },
  {
    flow: "attestation",
    name: "replay of accepted evidence",
    code: "ERR_NONCE_REUSED",
    run: async () => {
      const ev = await evidence();
      assert.equal((await call("POST", "/v1/attestations", ev)).body.verdict, "pass");
      return call("POST", "/v1/attestations", ev);
    },
  },
  { flow: "attestation", name: "a nonce issued to another host's AK", code: "ERR_NONCE_UNKNOWN", run: () => attestWith({ nonce: () => freshNonce(bob) }) },
  {
    flow: "attestation",
    name: "an expired nonce",
    code: "ERR_NONCE_EXPIRED",
    run: async () => attestWith({ nonce: async () => (await s.store.nonces.issue({ purpose: NONCE_PURPOSE, subject: alice.akName.toString("hex"), ttlMs: 1, at: Date.now() - 60_000 })).value }),
  },
  { flow: "attestation", name: "extraData empty", code: "ERR_NONCE_MISMATCH", run: () => attestWith({ attest: (a) => ({ ...a, extraData: Buffer.alloc(0) }) }) },
  // -- attestation: the signature and the signer
  { flow: "attestation", name: "quote signed by another host's AK", code: "ERR_SIGNATURE_INVALID", run: () => attestWith({ sign: (b) => signEcdsa(bob.akKey, b) }) },
  { flow: "attestation", name: "one bit of the attest flipped after signing", code: "ERR_SIGNATURE_INVALID", run: () => attestWith({ bytes: (b) => flip(b, -1) }) },
  { flow: "attestation", name: "ECDSA r = 0", code: "ERR_SIGNATURE_INVALID", run: () => attestWith({ sign: () => encodeTpmtSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: Buffer.alloc(32), s: Buffer.alloc(32, 1) }) }) },
  { flow: "attestation", name: "ECDSA s = 0", code: "ERR_SIGNATURE_INVALID", run: () => attestWith({ sign: () => encodeTpmtSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: Buffer.alloc(32, 1), s: Buffer.alloc(32) }) }) },
  { flow: "attestation", name: "RSASSA signature for an ECC AK", code: "ERR_SIGNATURE_SCHEME", run: () => attestWith({ sign: () => encodeTpmtSignature({ sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: Buffer.alloc(256, 1) }) }) },
  { flow: "attestation", name: "HMAC signature", code: "ERR_SIGNATURE_SCHEME", run: () => attestWith({ sign: () => encodeTpmtSignature({ sigAlg: TPM_ALG.HMAC, hash: TPM_ALG.SHA256, digest: Buffer.alloc(32, 1) }) }) },
  { flow: "attestation", name: "signature claims SHA-384 over a SHA-256 signing", code: "ERR_SIGNATURE_SCHEME", run: () => attestWith({ sign: (b, h) => { const t = signEcdsa(h.akKey, b); t.writeUInt16BE(TPM_ALG.SHA384, 2); return t; } }) },
  { flow: "attestation", name: "NULL signature", code: "ERR_SIGNATURE_SCHEME", run: () => attestWith({ sign: () => Buffer.from([0x00, 0x10]) }) },
  { flow: "attestation", name: "an AK that is bound to no host", code: "ERR_AK_NOT_BOUND", run: async () => attestWith({ host: softHost("stranger"), nonce: async () => Buffer.alloc(32, 1) }) },
  { flow: "attestation", name: "challenge for an AK bound to no host", code: "ERR_AK_NOT_BOUND", run: () => call("POST", "/v1/attestations/challenge", { akNameHex: softHost("x").akName.toString("hex") }) },
  { flow: "attestation", name: "AK name with another name algorithm prefix", code: "ERR_AK_NOT_BOUND", run: () => attestWith({ body: (b) => (b.akNameHex = "0004" + b.akNameHex.slice(4)) }) },
  // -- attestation: the structure
  { flow: "attestation", name: "magic is not TPM_GENERATED_VALUE (signed)", code: "ERR_MAGIC", run: () => attestWith({ attest: (a) => ({ ...a, magic: 0xdeadbeef }) }) },
  {
    flow: "attestation",
    name: "a certify statement instead of a quote (signed)",
    code: "ERR_ATTEST_TYPE",
    run: () => attestWith({ attest: (a) => ({ ...a, type: TPM_ST.ATTEST_CERTIFY, attested: { name: alice.akName, qualifiedName: alice.akName } }) as TpmsAttest }),
  },
  // verify, then parse: bytes changed after signing are a bad signature; malformed bytes the AK did sign are a parse error
  { flow: "attestation", name: "attest with a trailing byte", code: "ERR_PARSE_TRAILING_BYTES", run: () => attestWith({ signed: (b) => Buffer.concat([b, Buffer.from([0])]) }) },
  { flow: "attestation", name: "attest truncated", code: "ERR_PARSE_TRUNCATED", run: () => attestWith({ signed: (b) => b.subarray(0, b.length - 10) }) },
  { flow: "attestation", name: "attest with an oversized TPM2B", code: "ERR_PARSE_TOO_LARGE", run: () => attestWith({ signed: (b) => { const c = Buffer.from(b); c.writeUInt16BE(0xffff, 6); return c; } }) },
  { flow: "attestation", name: "attest truncated after signing", code: "ERR_SIGNATURE_INVALID", run: () => attestWith({ bytes: (b) => b.subarray(0, b.length - 10) }) },
  { flow: "attestation", name: "attest with an oversized TPM2B after signing", code: "ERR_SIGNATURE_INVALID", run: () => attestWith({ bytes: (b) => { const c = Buffer.from(b); c.writeUInt16BE(0xffff, 6); return c; } }) },
  { flow: "attestation", name: "signature truncated", code: "ERR_PARSE_TRUNCATED", run: () => attestWith({ sign: (b, h) => signEcdsa(h.akKey, b).subarray(0, 20) }) },
  { flow: "attestation", name: "signature with a trailing byte", code: "ERR_PARSE_TRAILING_BYTES", run: () => attestWith({ sign: (b, h) => Buffer.concat([signEcdsa(h.akKey, b), Buffer.from([1])]) }) },
  { flow: "attestation", name: "signature algorithm unknown", code: "ERR_PARSE_BAD_VALUE", run: () => attestWith({ sign: () => Buffer.from([0x12, 0x34, 0x00, 0x0b]) }) },
  // -- attestation: PCRs and the event log (the TPM signed it, so these are the host's verdict)
  { flow: "attestation", name: "a PCR value the quote's digest does not cover", code: "ERR_PCR_DIGEST_MISMATCH", status: 200, run: () => attestWith({ body: (b) => (b.pcrs.sha256["0"] = "00".repeat(32)) }) },
  { flow: "attestation", name: "a quoted digest that is not the PCRs'", code: "ERR_PCR_DIGEST_MISMATCH", status: 200, run: () => attestWith({ attest: (a) => ({ ...a, attested: { ...(a.attested as object), pcrDigest: Buffer.alloc(32, 9) } }) as TpmsAttest }) },
  { flow: "attestation", name: "the quote leaves out a policy PCR", code: "ERR_PCR_SELECTION_MISMATCH", status: 200, run: () => attestWith({ attest: PCR_SELECT_0_6, body: (b) => { for (const bank of Object.values(b.pcrs) as Record<string, string>[]) delete bank["7"]; } }) },
  { flow: "attestation", name: "an event log of another machine", code: "ERR_EVENTLOG_REPLAY_MISMATCH", status: 200, run: () => attestWith({ body: (b) => (b.eventLog = b64(LAPTOP_LOG)) }) },
  { flow: "attestation", name: "an event log with one digest flipped", code: "ERR_EVENTLOG_REPLAY_MISMATCH", status: 200, run: () => attestWith({ body: (b) => (b.eventLog = b64(tamperedLog())) }) },
  { flow: "attestation", name: "an event log cut short", code: "ERR_PARSE_EVENTLOG", status: 200, run: () => attestWith({ body: (b) => (b.eventLog = b64(FLEET_LOG.subarray(0, FLEET_LOG.length - 7))) }) },
  { flow: "attestation", name: "no event log: the policy PCRs stay unexplained", code: "ERR_EVENTLOG_PCR_UNEXPLAINED", status: 200, run: () => attestWith({ body: (b) => delete b.eventLog }) },
  { flow: "attestation", name: "a challenge for a host whose class has no baseline", code: "ERR_NO_BASELINE", run: () => call("POST", "/v1/attestations/challenge", { akNameHex: orphan.akName.toString("hex") }) },
  {
    flow: "attestation",
    name: "evidence of a host whose class has no baseline (a nonce the challenge would not give)",
    code: "ERR_NO_BASELINE",
    status: 200,
    run: async () => attestWith({ host: orphan, nonce: async () => (await s.store.nonces.issue({ purpose: NONCE_PURPOSE, subject: orphan.akName.toString("hex"), ttlMs: 60_000, at: Date.now() })).value }),
  },
  // -- attestation: the request
  { flow: "attestation", name: "no quotes", code: "ERR_VALIDATION", run: () => attestWith({ body: (b) => (b.quotes = []) }) },
  { flow: "attestation", name: "an unknown field", code: "ERR_VALIDATION", run: () => attestWith({ body: (b) => (b.verdict = "pass") }) },
  { flow: "attestation", name: "a PCR bank that does not exist", code: "ERR_VALIDATION", run: () => attestWith({ body: (b) => (b.pcrs.md5 = { "0": "00".repeat(16) }) }) },
  { flow: "attestation", name: "PCR index 99 as a string key", code: "ERR_VALIDATION", run: () => attestWith({ body: (b) => (b.pcrs.sha256["099"] = "00".repeat(32)) }) },
  { flow: "attestation", name: "event log that is not base64", code: "ERR_VALIDATION", run: () => attestWith({ body: (b) => (b.eventLog = "%%%%") }) },
  { flow: "attestation", name: "quote as a number", code: "ERR_VALIDATION", run: () => attestWith({ body: (b) => (b.quotes[0].attest = 42) }) },
  { flow: "attestation", name: "nine quotes", code: "ERR_VALIDATION", run: () => attestWith({ body: (b) => (b.quotes = Array(9).fill(b.quotes[0])) }) },
  { flow: "attestation", name: "challenge with an odd-length AK name", code: "ERR_VALIDATION", run: () => call("POST", "/v1/attestations/challenge", { akNameHex: "000b" + "a".repeat(63) }) },
  { flow: "attestation", name: "challenge for an unknown bank", code: "ERR_VALIDATION", run: () => call("POST", "/v1/attestations/challenge", { akNameHex: alice.akName.toString("hex"), banks: ["md5"] }) },
  { flow: "attestation", name: "malformed JSON", code: "ERR_VALIDATION", run: () => call("POST", "/v1/attestations", undefined, undefined, '{"akNameHex":') },
  { flow: "attestation", name: "prototype pollution attempt", code: "ERR_VALIDATION", run: async () => call("POST", "/v1/attestations", undefined, undefined, JSON.stringify(await evidence()).replace(/^\{/, '{"__proto__":{"verdict":"pass"},')) },

  // -- host registration (Add-HgsAttestationTpmHost)
  ...(() => {
    const reg = (name: string, identity: unknown, extra: Record<string, unknown> = {}, token: string | null = admin) => call("POST", "/v1/hosts", { name, hardwareClass: "gce-n1", identity, ...extra }, token ?? undefined);
    const ident = (h: SoftHost, f: (i: any) => void = () => undefined) => {
      const i = identityOf(h) as any;
      f(i);
      return i;
    };
    const ekBytes = (h: SoftHost) => tpm2b(h.ekPublic);
    return [
      { flow: "registration", name: "v2 host without an EK certificate", code: "ERR_EK_CERT_REQUIRED", run: () => reg("r-v2", identityOf(newcomer)) },
      { flow: "registration", name: "v1 host whose EK is not allow-listed", code: "ERR_EK_NOT_ALLOWLISTED", run: () => reg("r-v1", identityOf(softHost("unknown")), { policyVersion: "v1" }) },
      { flow: "registration", name: "a name already taken", code: "ERR_CONFLICT", run: () => reg(alice.name, identityOf(newcomer), { policyVersion: "v1" }) },
      { flow: "registration", name: "an EK already registered to another host", code: "ERR_CONFLICT", run: async () => { await s.store.trust.addAllowlist(alice.ekHash, { at: Date.now() }); return reg("r-dup-ek", identityOf(alice), { policyVersion: "v1" }); } },
      { flow: "registration", name: "an EK certificate of another TPM (none certifies this EK)", code: "ERR_EK_CERT_REQUIRED", run: () => reg("r-cert", ident(newcomer, (i) => (i.ekCertificates = [INFINEON_CERT]))) },
      { flow: "registration", name: "a certificate that is junk", code: "ERR_EK_NOT_TRUSTED", run: () => reg("r-junk", ident(newcomer, (i) => (i.ekCertificates = [b64(Buffer.from("not a certificate at all"))]))) },
      { flow: "registration", name: "an EK that can sign", code: "ERR_VALIDATION", run: () => reg("r-sign", ident(newcomer, (i) => { const p = Buffer.from(newcomer.ekPublic); p.writeUInt32BE(p.readUInt32BE(4) | TPMA_OBJECT.sign, 4); i.ekPublics[0].public = b64(tpm2b(p)); }), { policyVersion: "v1" }) },
      { flow: "registration", name: "an ECC EK labelled rsa2048", code: "ERR_VALIDATION", run: () => reg("r-alg", ident(newcomer, (i) => (i.ekPublics[0].alg = "rsa2048")), { policyVersion: "v1" }) },
      { flow: "registration", name: "EK TPM2B cut short", code: "ERR_PARSE_TRUNCATED", run: () => reg("r-trunc", ident(newcomer, (i) => (i.ekPublics[0].public = b64(ekBytes(newcomer).subarray(0, 40)))), { policyVersion: "v1" }) },
      { flow: "registration", name: "EK TPM2B with trailing bytes", code: "ERR_PARSE_TRAILING_BYTES", run: () => reg("r-trail", ident(newcomer, (i) => (i.ekPublics[0].public = b64(Buffer.concat([ekBytes(newcomer), Buffer.alloc(3)])))), { policyVersion: "v1" }) },
      { flow: "registration", name: "a host name with a slash", code: "ERR_VALIDATION", run: () => reg("../etc", identityOf(newcomer), { policyVersion: "v1" }) },
      { flow: "registration", name: "policy version v3", code: "ERR_VALIDATION", run: () => reg("r-v3", identityOf(newcomer), { policyVersion: "v3" }) },
      { flow: "registration", name: "allow-listing the EK of a v2 host (v2 requires a certificate)", code: "ERR_VALIDATION", run: () => reg("r-v2-allow", identityOf(softHost("v2-allow")), { allowlistEk: true }) },
      { flow: "registration", name: "allow-listing the EK by an auditor", code: "ERR_FORBIDDEN", run: () => reg("r-aud-allow", identityOf(softHost("aud-allow")), { policyVersion: "v1", allowlistEk: true }, auditor) },
      { flow: "registration", name: "allowlistEk as a string", code: "ERR_VALIDATION", run: () => reg("r-allow-str", identityOf(softHost("allow-str")), { policyVersion: "v1", allowlistEk: "yes" }) },
      { flow: "registration", name: "moving a host to a class with a newline", code: "ERR_VALIDATION", run: () => call("PATCH", `/v1/hosts/${alice.name}`, { hardwareClass: "a\nb" }, admin) },
      { flow: "registration", name: "moving a host by an auditor", code: "ERR_FORBIDDEN", run: () => call("PATCH", `/v1/hosts/${alice.name}`, { hardwareClass: "elsewhere" }, auditor) },
      { flow: "registration", name: "no EK at all", code: "ERR_VALIDATION", run: () => reg("r-none", ident(newcomer, (i) => (i.ekPublics = []))) },
      { flow: "registration", name: "without an API token", code: "ERR_UNAUTHENTICATED", run: () => reg("r-anon", identityOf(newcomer), { policyVersion: "v1" }, null) },
      { flow: "registration", name: "by an auditor", code: "ERR_FORBIDDEN", run: () => reg("r-aud", identityOf(newcomer), { policyVersion: "v1" }, auditor) },
      { flow: "registration", name: "with a revoked admin token", code: "ERR_UNAUTHENTICATED", run: () => reg("r-rev", identityOf(newcomer), { policyVersion: "v1" }, revoked) },
    ] as Attack[];
  })(),

  // -- AK enrolment with credential activation
  ...(() => {
    const start = (akPublic: Buffer, ek = tpm2b(alice.ekPublic)) => call("POST", "/v1/activations", { ekPublic: b64(ek), akPublic: b64(akPublic) });
    const v1Ek = () => tpm2b(newcomer.ekPublic);
    return [
      { flow: "activation", name: "an EK that belongs to no host", code: "ERR_NOT_FOUND", run: () => start(akLike((t) => t), tpm2b(softHost("nobody").ekPublic)) },
      { flow: "activation", name: "a v2 host's EK without its certificate", code: "ERR_EK_CERT_REQUIRED", run: () => start(akLike((t) => t), tpm2b(certless.ekPublic)) },
      { flow: "activation", name: "AK not restricted", code: "ERR_KEY_NOT_RESTRICTED", run: () => start(akLike((t) => without(t, TPMA_OBJECT.restricted)), v1Ek()) },
      { flow: "activation", name: "AK not fixedTPM", code: "ERR_KEY_NOT_FIXED_TPM", run: () => start(akLike((t) => without(t, TPMA_OBJECT.fixedTPM)), v1Ek()) },
      { flow: "activation", name: "AK not fixedParent", code: "ERR_KEY_NOT_FIXED_PARENT", run: () => start(akLike((t) => without(t, TPMA_OBJECT.fixedParent)), v1Ek()) },
      { flow: "activation", name: "AK key made outside the TPM", code: "ERR_KEY_NOT_SENSITIVE_DATA_ORIGIN", run: () => start(akLike((t) => without(t, TPMA_OBJECT.sensitiveDataOrigin)), v1Ek()) },
      { flow: "activation", name: "AK that also decrypts", code: "ERR_KEY_DECRYPT", run: () => start(akLike((t) => withAttr(t, TPMA_OBJECT.decrypt)), v1Ek()) },
      { flow: "activation", name: "AK that cannot sign", code: "ERR_KEY_NOT_SIGNING", run: () => start(akLike((t) => without(t, TPMA_OBJECT.sign)), v1Ek()) },
      { flow: "activation", name: "AK public cut short", code: "ERR_PARSE_TRUNCATED", run: () => start(akLike((t) => t).subarray(0, 30), v1Ek()) },
      {
        flow: "activation",
        name: "the wrong secret",
        code: "ERR_ACTIVATION_FAILED",
        run: async () => {
          const a = await start(akLike((t) => t), v1Ek());
          assert.equal(a.status, 201, JSON.stringify(a.body));
          return call("POST", `/v1/activations/${a.body.activationId}`, { secret: b64(Buffer.alloc(32, 1)) });
        },
      },
      {
        flow: "activation",
        name: "a second try after a wrong secret (one try: the activation is spent)",
        code: "ERR_NOT_FOUND",
        run: async () => {
          const a = await start(akLike((t) => t), v1Ek());
          await call("POST", `/v1/activations/${a.body.activationId}`, { secret: b64(Buffer.alloc(32, 1)) });
          return call("POST", `/v1/activations/${a.body.activationId}`, { secret: b64(Buffer.alloc(32, 2)) });
        },
      },
      { flow: "activation", name: "an activation that does not exist", code: "ERR_NOT_FOUND", run: () => call("POST", "/v1/activations/6f1f3c1e-0000-4000-8000-000000000000", { secret: b64(Buffer.alloc(32)) }) },
      { flow: "activation", name: "activation id that is not a UUID", code: "ERR_VALIDATION", run: () => call("POST", "/v1/activations/..%2f..%2fadmin", { secret: b64(Buffer.alloc(32)) }) },
    ] as Attack[];
  })(),

  // -- EK trust administration
  { flow: "trust", name: "allow-list a hash of 63 digits", code: "ERR_VALIDATION", run: () => call("POST", "/v1/trust/allowlist", { ekHash: "a".repeat(63) }, admin) },
  { flow: "trust", name: "allow-list by an auditor", code: "ERR_FORBIDDEN", run: () => call("POST", "/v1/trust/allowlist", { ekHash: "a".repeat(64) }, auditor) },
  { flow: "trust", name: "allow-list without a token", code: "ERR_UNAUTHENTICATED", run: () => call("POST", "/v1/trust/allowlist", { ekHash: "a".repeat(64) }) },
  { flow: "trust", name: "remove an entry that is not there", code: "ERR_NOT_FOUND", run: () => call("DELETE", `/v1/trust/allowlist/${"e".repeat(64)}`, undefined, admin) },
  { flow: "trust", name: "register a folder that does not exist", code: "ERR_VALIDATION", run: () => call("POST", "/v1/trust/allowlist-dirs", { path: join(dir, "no-such-folder") }, admin) },
  ...(() => {
    /** An allow-list folder under the attack folder with one EK hash file, shaped by `f`. */
    const folder = (name: string, f: (folder: string, file: string) => void) => {
      const d = join(dir, name);
      mkdirSync(d, { mode: 0o755 });
      const file = join(d, "ab".repeat(32));
      writeFileSync(file, "", { mode: 0o644 });
      f(d, file);
      return d;
    };
    const add = (path: string) => call("POST", "/v1/trust/allowlist-dirs", { path }, admin);
    return [
      { flow: "trust", name: "an allow-list folder by relative path", code: "ERR_VALIDATION", run: () => add("allowlist") },
      { flow: "trust", name: "an allow-list folder others can write", code: "ERR_UNSAFE_FILE", run: () => add(folder("al-world", (d) => chmodSync(d, 0o777))) },
      { flow: "trust", name: "an allow-list folder its group can write", code: "ERR_UNSAFE_FILE", run: () => add(folder("al-group", (d) => chmodSync(d, 0o775))) },
      { flow: "trust", name: "an allow-list folder owned by another user", code: "ERR_UNSAFE_FILE", run: () => add(folder("al-owner", (d) => chownSync(d, 65534, 65534))) },
      { flow: "trust", name: "an allow-list file others can write", code: "ERR_UNSAFE_FILE", run: () => add(folder("al-file", (_d, f) => chmodSync(f, 0o666))) },
      { flow: "trust", name: "an allow-list file owned by another user", code: "ERR_UNSAFE_FILE", run: () => add(folder("al-file-owner", (_d, f) => chownSync(f, 65534, 65534))) },
      {
        flow: "trust",
        name: "an allow-list folder inside a folder others can write (not sticky)",
        code: "ERR_UNSAFE_FILE",
        run: () => {
          const parent = join(dir, "al-open-parent");
          mkdirSync(parent, { mode: 0o755 });
          chmodSync(parent, 0o777);
          return add(folder("al-open-parent/inner", () => undefined));
        },
      },
    ] as Attack[];
  })(),
  { flow: "trust", name: "import a CA with an empty list", code: "ERR_VALIDATION", run: () => call("POST", "/v1/trust/cas", { certificates: [] }, admin) },
  { flow: "trust", name: "remove a CA that is not there", code: "ERR_NOT_FOUND", run: () => call("DELETE", `/v1/trust/cas/${"0".repeat(64)}`, undefined, admin) },
  { flow: "trust", name: "confirm with both a hash and a certificate", code: "ERR_VALIDATION", run: () => call("POST", "/v1/trust/confirm", { ekHash: "a".repeat(64), ekCertificates: [INFINEON_CERT] }, admin) },
  { flow: "trust", name: "confirm with an EK public cut short", code: "ERR_PARSE_TRUNCATED", run: () => call("POST", "/v1/trust/confirm", { ekPublic: b64(tpm2b(alice.ekPublic).subarray(0, 20)) }, admin) },

  // -- policies
  { flow: "policy", name: "an unknown kind", code: "ERR_VALIDATION", run: () => call("POST", "/v1/policies", { kind: "magic", name: "x", document: {} }, admin) },
  { flow: "policy", name: "a baseline that is an empty object", code: "ERR_VALIDATION", run: () => call("POST", "/v1/policies", { kind: "baseline", name: "x", document: {} }, admin) },
  { flow: "policy", name: "a code integrity digest of the wrong length", code: "ERR_VALIDATION", run: () => call("POST", "/v1/policies", { kind: "ci", name: "x", document: { $schema: "https://tpmtrust.dev/schemas/ci-1.json", kind: "ci", version: 1, name: "x", digest: "ab", pcrs: [12] } }, admin) },
  { flow: "policy", name: "a policy name with spaces", code: "ERR_VALIDATION", run: () => call("POST", "/v1/policies", { kind: "secureboot", name: "a b", document: {} }, admin) },
  { flow: "policy", name: "written by an auditor", code: "ERR_FORBIDDEN", run: () => call("POST", "/v1/policies", { kind: "secureboot", name: "x", document: {} }, auditor) },
  { flow: "policy", name: "disable a policy that does not exist", code: "ERR_NOT_FOUND", run: () => call("DELETE", "/v1/policies/6f1f3c1e-0000-4000-8000-000000000000", undefined, admin) },

  // -- administration, audit and operations
  { flow: "admin", name: "the audit log without a token", code: "ERR_UNAUTHENTICATED", run: () => call("GET", "/v1/audit") },
  { flow: "admin", name: "the audit log with a made-up token", code: "ERR_UNAUTHENTICATED", run: () => call("GET", "/v1/audit", undefined, "tpmtrust_" + "A".repeat(43)) },
  { flow: "admin", name: "audit paging with a negative seq", code: "ERR_VALIDATION", run: () => call("GET", "/v1/audit?afterSeq=-1", undefined, admin) },
  { flow: "admin", name: "metrics without a token", code: "ERR_UNAUTHENTICATED", run: () => call("GET", "/metrics") },
  { flow: "admin", name: "webhooks read by an auditor", code: "ERR_FORBIDDEN", run: () => call("GET", "/v1/webhooks", undefined, auditor) },
  { flow: "admin", name: "a webhook with a short secret", code: "ERR_VALIDATION", run: () => call("POST", "/v1/webhooks", { url: "http://127.0.0.1:9/", secret: "short" }, admin) },
  { flow: "admin", name: "remove a host that does not exist", code: "ERR_NOT_FOUND", run: () => call("DELETE", "/v1/hosts/nobody-here", undefined, admin) },
  { flow: "admin", name: "the timeline of an unknown host", code: "ERR_NOT_FOUND", run: () => call("GET", "/v1/hosts/nobody-here/attestations", undefined, admin) },
  { flow: "admin", name: "an unknown route", code: "ERR_NOT_FOUND", run: () => call("GET", "/v1/../../etc/passwd") },
  { flow: "admin", name: "a dashboard path outside web/", code: "ERR_NOT_FOUND", run: () => call("GET", "/ui/..%2f..%2fpackage.json") },

  // -- key release (attestation tokens)
  ...(() => {
    const enc = (token?: string, provider = "vault") => call("POST", `/v1/keys/${provider}/encrypt`, { plaintext: b64(Buffer.from("secret")) }, token);
    const forged = async (claims: Record<string, unknown>, o: { alg?: string; exp?: number } = {}) => {
      const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      return new SignJWT({ verdict: "pass", ...claims }).setProtectedHeader({ alg: o.alg ?? "ES256", kid: "forged" }).setSubject(alice.name).setIssuedAt().setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 600).sign(privateKey);
    };
    return [
      { flow: "keys", name: "encrypt without a token", code: "ERR_UNAUTHENTICATED", run: () => enc() },
      { flow: "keys", name: "encrypt with a token that is not a JWT", code: "ERR_TOKEN_INVALID", run: () => enc("not.a.jwt") },
      { flow: "keys", name: "encrypt with a JWT signed by another key", code: "ERR_TOKEN_INVALID", run: async () => enc(await forged({})) },
      { flow: "keys", name: "encrypt with an alg=none token", code: "ERR_TOKEN_INVALID", run: async () => enc(`${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(`{"sub":"${alice.name}","verdict":"pass"}`).toString("base64url")}.`) },
      { flow: "keys", name: "encrypt with an admin API token", code: "ERR_TOKEN_INVALID", run: () => enc(admin) },
      { flow: "keys", name: "a provider name with a slash", code: "ERR_VALIDATION", run: () => call("POST", "/v1/keys/a%2Fb/encrypt", { plaintext: "AAAA" }) },
      { flow: "keys", name: "a local key server whose master key file is an arbitrary existing path", code: "ERR_VALIDATION", run: () => call("POST", "/v1/keys/servers", { name: "probe1", kind: "local", config: { masterKeyFile: "/etc/passwd" } }, admin) },
      { flow: "keys", name: "a local key server whose master key file escapes the key directory", code: "ERR_VALIDATION", run: () => call("POST", "/v1/keys/servers", { name: "probe2", kind: "local", config: { masterKeyFile: "../../etc/shadow" } }, admin) },
      { flow: "keys", name: "a PKCS#11 key server whose PIN file is an arbitrary existing path", code: "ERR_VALIDATION", run: () => call("POST", "/v1/keys/servers", { name: "probe3", kind: "pkcs11", config: { module: "/usr/lib/softhsm/libsofthsm2.so", slot: 0, pinFile: "/etc/shadow" } }, admin) },
      { flow: "keys", name: "a PKCS#11 key server whose PIN file escapes the key directory", code: "ERR_VALIDATION", run: () => call("POST", "/v1/keys/servers", { name: "probe4", kind: "pkcs11", config: { module: "/usr/lib/softhsm/libsofthsm2.so", slot: 0, pinFile: "../../etc/shadow" } }, admin) },
      { flow: "keys", name: "a PKCS#11 key server whose module is a library outside the module folders and the key directory", code: "ERR_VALIDATION", run: () => addServer("probe5", "pkcs11", { ...hsmSettings, module: "/lib/x86_64-linux-gnu/libc.so.6" }) },
      { flow: "keys", name: "a PKCS#11 module path that climbs out of a module folder", code: "ERR_VALIDATION", run: () => addServer("probe6", "pkcs11", { ...hsmSettings, module: "/usr/lib/softhsm/../../../tmp/evil.so" }) },
      { flow: "keys", name: "a PKCS#11 module that is a link in the key directory to a library outside", code: "ERR_VALIDATION", run: () => (symlinkSync(outsideFile(), join(dir, "linked.so")), addServer("probe7", "pkcs11", { ...hsmSettings, module: join(dir, "linked.so") })) },
      { flow: "keys", name: "a KMIP key server whose CA certificate is an arbitrary existing path", code: "ERR_VALIDATION", run: () => addServer("probe8", "kmip", { ...kmipSettings, ca: "/etc/passwd" }) },
      { flow: "keys", name: "a KMIP key server whose client certificate escapes the key directory", code: "ERR_VALIDATION", run: () => addServer("probe9", "kmip", { ...kmipSettings, cert: "../../etc/ssl/certs/ca-certificates.crt" }) },
      { flow: "keys", name: "a KMIP key server whose client key is an arbitrary existing path", code: "ERR_VALIDATION", run: () => addServer("probe10", "kmip", { ...kmipSettings, key: outsideFile() }) },
      { flow: "keys", name: "providers managed by an auditor", code: "ERR_FORBIDDEN", run: () => call("POST", "/v1/keys/providers", { name: "vault" }, auditor) },
    ] as Attack[];
  })(),

  // -- certificate authority
  { flow: "ca", name: "enrol against a template that does not exist", code: "ERR_NOT_FOUND", run: () => call("POST", "/v1/ca/enroll", { template: "nope", csr: b64(Buffer.from("x")) }, admin) },
  { flow: "ca", name: "a template managed by an auditor", code: "ERR_FORBIDDEN", run: () => call("POST", "/v1/ca/templates", { name: "t" }, auditor) },
  { flow: "ca", name: "revoke a certificate that does not exist", code: "ERR_NOT_FOUND", run: () => call("POST", "/v1/ca/certs/0badc0de/revoke", {}, admin) },
  // issue 12: who may enrol
  { flow: "ca", name: "an anonymous request to a template of mode none", code: "ERR_UNAUTHENTICATED", run: () => enrolPlain("t-none", [{ CN: ["x.corp.example"] }]) },
  { flow: "ca", name: "an anonymous request without attestation to a required-if-capable template", code: "ERR_UNAUTHENTICATED", run: () => enrolPlain("t-ric", [{ CN: ["x.corp.example"] }]) },
  { flow: "ca", name: "an auditor token on an enrolment (it never vouches)", code: "ERR_FORBIDDEN", run: () => enrolPlain("t-enrol", [{ CN: ["x.corp.example"] }], { token: auditor }) },
  { flow: "ca", name: "an enroller the template does not name", code: "ERR_FORBIDDEN", run: () => enrolPlain("t-enrol", [{ CN: ["x.corp.example"] }], { token: intruderEnroller }) },
  { flow: "ca", name: "an admin on a template that admits no admins", code: "ERR_FORBIDDEN", run: () => enrolPlain("t-enrol", [{ CN: ["x.corp.example"] }], { token: admin }) },
  { flow: "ca", name: "an enroller token on an admin route", code: "ERR_FORBIDDEN", run: () => call("POST", "/v1/ca/templates", { name: "by-enroller" }, opsEnroller) },
  { flow: "ca", name: "an attested host of a class the template does not admit", code: "ERR_FORBIDDEN", run: () => enrolAttested(certee, "t-class", [{ CN: ["certee"] }]) },
  // issue 12: names past the template's patterns
  { flow: "ca", name: "CN=login.bank.example, OU=CN=x.corp.example past CN=[a-z0-9-]+\\.corp\\.example", code: "ERR_POLICY_FAILED", run: () => enrolPlain("t-none", [{ CN: ["login.bank.example"] }, { OU: ["CN=x.corp.example"] }], { token: admin }) },
  { flow: "ca", name: "a second CN behind an allowed one", code: "ERR_POLICY_FAILED", run: () => enrolPlain("t-none", [{ CN: ["x.corp.example"] }, { CN: ["login.bank.example"] }], { token: admin }) },
  { flow: "ca", name: "a multi-valued RDN beside an allowed CN", code: "ERR_POLICY_FAILED", run: () => enrolPlain("t-none", [{ CN: ["x.corp.example"], OU: ["login.bank.example"] }], { token: admin }) },
  { flow: "ca", name: "a CN value that reads like a separator and a second CN", code: "ERR_POLICY_FAILED", run: () => enrolPlain("t-none", [{ CN: ["x.corp.example, CN=login.bank.example"] }], { token: admin }) },
  { flow: "ca", name: "a SAN that only begins like the pattern", code: "ERR_POLICY_FAILED", run: () => enrolPlain("t-none", [{ CN: ["x.corp.example"] }], { dns: ["x.corp.example.bank.example"], token: admin }) },
  // issue 12: an attested enrolment names only the attested host
  { flow: "ca", name: "an attested host names another host as its CN", code: "ERR_POLICY_FAILED", run: () => enrolAttested(certee, "t-names", [{ CN: ["alice"] }]) },
  { flow: "ca", name: "an attested host names another host in a SAN", code: "ERR_POLICY_FAILED", run: () => enrolAttested(certee, "t-names", [{ CN: ["certee"] }], { dns: ["alice"] }) },
  { flow: "ca", name: "an attested host vouched for by an enroller names another host", code: "ERR_POLICY_FAILED", run: () => enrolAttested(alice, "t-user", [{ CN: ["bob"] }], { token: opsEnroller }) },
  // issue 12: ACME finalize names exactly the order's identifier (badCSR)
  { flow: "ca", name: "ACME finalize with CN=<host>, CN=login.bank.example", code: "ERR_POLICY_FAILED", run: () => acmeFinalize([{ CN: ["certee"] }, { CN: ["login.bank.example"] }]) },
  { flow: "ca", name: "ACME finalize with another name as a SAN", code: "ERR_POLICY_FAILED", run: () => acmeFinalize([{ CN: ["certee"] }], ["login.bank.example"]) },
  { flow: "ca", name: "ACME finalize with an O beside the CN", code: "ERR_POLICY_FAILED", run: () => acmeFinalize([{ CN: ["certee"] }, { O: ["Bank"] }]) },

  // -- provisioning administration
  { flow: "provisioning", name: "an enrollment with a truncated endorsement key", code: "ERR_PARSE_TRUNCATED", run: () => call("POST", "/v1/provisioning/enrollments", { registrationId: "dev-1", endorsementKey: b64(alice.ekPublic.subarray(0, 40)) }, admin) },
  { flow: "provisioning", name: "an enrollment with an upper-case id that collides", code: "ERR_CONFLICT", run: async () => { await call("POST", "/v1/provisioning/enrollments", { registrationId: "dev-2", endorsementKey: b64(tpm2b(bob.ekPublic)) }, admin); return call("POST", "/v1/provisioning/enrollments", { registrationId: "DEV-2", endorsementKey: b64(tpm2b(bob.ekPublic)) }, admin); } },
  { flow: "provisioning", name: "an enrollment by an auditor", code: "ERR_FORBIDDEN", run: () => call("POST", "/v1/provisioning/enrollments", { registrationId: "dev-3", endorsementKey: b64(tpm2b(bob.ekPublic)) }, auditor) },
  { flow: "provisioning", name: "an enrollment group whose CA is junk", code: "ERR_PARSE_CERT", run: () => call("POST", "/v1/provisioning/enrollment-groups", { name: "g", caCertificates: [b64(Buffer.from("junk junk junk"))] }, admin) },
  { flow: "provisioning", name: "an ID scope with a slash", code: "ERR_VALIDATION", run: () => call("PUT", "/v1/provisioning/settings", { idScope: "a/b" }, admin) },
  // -- IMA (issue 17): increments against the running PCR 10 of the host's boot
  {
    flow: "ima",
    name: "an increment with one file digest flipped (template hash left as it was)",
    code: "ERR_IMA_REPLAY_MISMATCH",
    status: 200,
    run: async () => {
      const forged = IMA_BOOT.map((e) => e.binary);
      const e = IMA_BOOT[3];
      const c = Buffer.from(e.binary);
      c[e.binary.length - e.templateData.length + 4 + "sha256:\0".length] ^= 1;
      forged[3] = c;
      return imaAttest(await imaHost("ima-flip"), { extended: IMA_BOOT, sent: Buffer.concat(forged), startIndex: 0 });
    },
  },
  {
    flow: "ima",
    name: "entries reordered",
    code: "ERR_IMA_REPLAY_MISMATCH",
    status: 200,
    run: async () => imaAttest(await imaHost("ima-order"), { extended: IMA_BOOT, sent: imaList([IMA_BOOT[0], IMA_BOOT[1], IMA_BOOT[3], IMA_BOOT[2], ...IMA_BOOT.slice(4)]), startIndex: 0 }),
  },
  {
    flow: "ima",
    name: "entries beyond those the quote covers claimed as verified",
    code: "ERR_IMA_LIST_REQUIRED",
    run: async () => {
      const h = await imaHost("ima-beyond");
      const extra = [imaEvil("/usr/bin/beyond-1"), imaEvil("/usr/bin/beyond-2")];
      // the quote covers IMA_BOOT only: the two later entries wait for a quote that covers them
      const r = await imaAttest(h, { extended: IMA_BOOT, sent: imaList([...IMA_BOOT, ...extra]), startIndex: 0 });
      assert.deepEqual([r.body.verdict, r.body.ima.covered, r.body.ima.nextIndex], ["pass", IMA_BOOT.length, IMA_BOOT.length], JSON.stringify(r.body).slice(0, 600));
      const later = imaEvil("/usr/bin/later");
      return imaAttest(h, { extended: [...IMA_BOOT, ...extra, later], sent: imaList([later]), startIndex: IMA_BOOT.length + extra.length });
    },
  },
  {
    flow: "ima",
    name: "an older increment sent again",
    code: "ERR_IMA_LIST_REQUIRED",
    run: async () => imaAttest(await imaVerified("ima-replayed"), { extended: IMA_BOOT, sent: imaList(IMA_BOOT.slice(3)), startIndex: 3 }),
  },
  {
    flow: "ima",
    name: "a new boot continued from the last boot's index",
    code: "ERR_IMA_LIST_REQUIRED",
    run: async () => {
      const next = imaEvil("/usr/bin/after-reboot");
      const r = await imaAttest(await imaVerified("ima-reboot"), { extended: [...IMA_BOOT, next], sent: imaList([next]), startIndex: IMA_BOOT.length, resetCount: 8 });
      assert.equal(r.body.details?.fromIndex, 0, JSON.stringify(r.body));
      return r;
    },
  },
  {
    flow: "ima",
    name: "a file outside the excluded /tmp/ whose path names it",
    code: "ERR_IMA_DIGEST_NOT_ALLOWED",
    status: 200,
    run: async () => {
      const smuggled = [...IMA_BOOT, imaEvil("/usr/bin/evil/tmp/x"), imaEvil("./tmp/../usr/bin/evil")];
      const r = await imaAttest(await imaHost("ima-exclude"), { extended: smuggled, sent: imaList(smuggled), startIndex: 0 });
      const diffs = r.body.diff?.flatMap((d: { diffs: { description: string }[] }) => d.diffs.map((x) => x.description));
      assert.deepEqual(diffs, ["/usr/bin/evil/tmp/x", "./tmp/../usr/bin/evil"], JSON.stringify(r.body).slice(0, 600));
      return r;
    },
  },
  {
    flow: "ima",
    name: "an ima-sig signature by a key the policy does not trust",
    code: "ERR_IMA_SIGNATURE_INVALID",
    status: 200,
    run: async () => {
      const signed = [...IMA_BOOT, imaSignedByStranger("/usr/bin/signed-by-stranger")];
      return imaAttest(await imaHost("ima-sig"), { extended: signed, sent: imaList(signed), startIndex: 0 });
    },
  },
  // each route bounds its body: the IMA list's 32 MiB only on POST /v1/attestations
  { flow: "ima", name: "a 2 MiB body on a route of the default 1 MiB limit", code: "ERR_BODY_TOO_LARGE", status: 413, run: () => call("POST", "/v1/hosts", { name: "big", hardwareClass: "gce-n1", identity: { junk: "x".repeat(2 << 20) } }, admin) },
  { flow: "ima", name: "an attestation body over 32 MiB", code: "ERR_BODY_TOO_LARGE", status: 413, run: async () => call("POST", "/v1/attestations", { ...(await evidence()), ima: { startIndex: 0, list: "A".repeat(33 << 20) } }) },
];

before(async () => {
  s = await startServer({ db: join(dir, "attacks.db"), listen: "127.0.0.1:0", logger: false, attest: { sweepMs: 0 } });
  admin = readFileSync(s.adminTokenFile!, "utf8").trim();
  auditor = (await s.store.adminTokens.create({ at: Date.now(), role: "auditor" })).token;
  const r = await s.store.adminTokens.create({ at: Date.now(), role: "admin", label: "revoked" });
  await s.store.adminTokens.revoke(r.id, Date.now());
  revoked = r.token;
  [alice, bob, orphan, newcomer, certee] = ["alice", "bob", "orphan", "newcomer", "certee"].map(softHost);
  await addFleetBaseline(s.store);
  await seedHosts(s.store, [alice, bob, certee]);
  await s.store.trust.addAllowlist(certee.ekHash, { at: Date.now() });
  const akCa = await attestationCa(s.store, Date.now());
  const akCert = { hostName: certee.name, akPublic: decodeTpmtPublic(certee.akPublic), akName: certee.akName, now: Date.now() };
  certeeAkCert = await recordAkCertificate(s.store, akCa, await signAkCertificate(akCa, akCert), akCert);
  // the key attestation CA and its templates
  await initCa(s.store, { actor: "test", now: Date.now(), keyDir: join(dir, "ca-keys") });
  opsEnroller = (await s.store.adminTokens.create({ at: Date.now(), role: "enroller", identity: "ops" })).token;
  intruderEnroller = (await s.store.adminTokens.create({ at: Date.now(), role: "enroller", identity: "intruder" })).token;
  const corp = { subject: { pattern: "CN=[a-z0-9-]+\\.corp\\.example" }, subjectAltNames: { allowed: ["dns"], pattern: "[a-z0-9-]+\\.corp\\.example" } };
  for (const t of [
    { name: "t-none", ...corp },
    { name: "t-ric", ...corp, keyAttestation: { mode: "required-if-capable", trustModels: ["ek-key"] } },
    { name: "t-enrol", requesters: { enrollers: ["ops"], admins: false } },
    { name: "t-names", subjectFrom: "request", subjectAltNames: { allowed: ["dns"] }, keyAttestation: { mode: "required", trustModels: ["ek-key"] } },
    { name: "t-host", subjectAltNames: { allowed: ["dns"] }, keyAttestation: { mode: "required", trustModels: ["ek-key"] } },
    { name: "t-class", requesters: { hostClasses: ["other"] }, keyAttestation: { mode: "required", trustModels: ["ek-key"] } },
    { name: "t-user", subjectFrom: "request", requesters: { enrollers: ["ops"] }, keyAttestation: { mode: "required", trustModels: ["user-credentials"] } },
    { name: "t-acme", subjectAltNames: { allowed: ["dns"] }, keyAttestation: { mode: "required", trustModels: ["ek-key"] } },
  ]) {
    await putTemplate(s.store, t, { actor: "test", now: Date.now() });
  }
  await s.store.hosts.add({ at: Date.now(), name: orphan.name, hardwareClass: "no-baseline", policyVersion: "v2", trustMethod: "ek-cert", eks: [{ name: orphan.ekName, public: orphan.ekPublic, cert: await testEkCertificate(orphan.ekPublic) }] });
  await s.store.aks.bind({ at: Date.now(), hostName: orphan.name, name: orphan.akName, public: orphan.akPublic });
  certless = softHost("certless");
  await s.store.hosts.add({ at: Date.now(), name: certless.name, hardwareClass: "gce-n1", policyVersion: "v2", trustMethod: "ek-cert", eks: [{ name: certless.ekName, public: certless.ekPublic, cert: null }] });
  // a v1 host for activation cases: registered over the API with its allow-listed EK
  await s.store.trust.addAllowlist(newcomer.ekHash, { at: Date.now() });
  const v1 = await call("POST", "/v1/hosts", { name: "newcomer", hardwareClass: "gce-n1", policyVersion: "v1", identity: identityOf(newcomer) }, admin);
  assert.equal(v1.status, 201, JSON.stringify(v1.body));
  // the control: honest evidence passes
  assert.equal((await attestWith()).body.verdict, "pass");
});
after(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

test("the corpus holds at least 100 attacks across every flow", () => {
  assert.ok(ATTACKS.length >= 100, `${ATTACKS.length} attacks`);
  assert.deepEqual([...new Set(ATTACKS.map((a) => a.flow))].sort(), ["activation", "admin", "attestation", "ca", "ima", "keys", "policy", "provisioning", "registration", "trust"]);
  assert.equal(new Set(ATTACKS.map((a) => `${a.flow} ${a.name}`)).size, ATTACKS.length, "names are unique");
});

test("every admin route of the OpenAPI document answers 401 without a token and 403 to a role it does not admit, before it looks at the body", async () => {
  const doc = (await call("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { security?: { adminToken: string[] }[] }>> };
  const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).flatMap(([method, op]) => (op.security ? [{ method: method.toUpperCase(), path: path.replace(/\{[^}]+\}/g, "%00"), roles: op.security[0].adminToken }] : [])),
  );
  assert.ok(routes.length >= 40, `${routes.length} admin routes`);
  const junk = async (method: string, path: string, token?: string) => {
    const headers: Record<string, string> = { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const r = await fetch(`${s.url}${path}?unknownParameter=%ZZ`, { method, headers, body: method === "GET" || method === "DELETE" ? undefined : '{"not json' });
    return { status: r.status, body: (await r.json()) as { code: string } };
  };
  for (const r of routes) {
    const anonymous = await junk(r.method, r.path);
    assert.deepEqual([anonymous.status, anonymous.body.code], [401, "ERR_UNAUTHENTICATED"], `${r.method} ${r.path}`);
    assert.deepEqual(await junk(r.method, r.path, revoked).then((x) => [x.status, x.body.code]), [401, "ERR_UNAUTHENTICATED"], `${r.method} ${r.path}`);
    if (!r.roles.includes("auditor")) assert.deepEqual(await junk(r.method, r.path, auditor).then((x) => [x.status, x.body.code]), [403, "ERR_FORBIDDEN"], `${r.method} ${r.path}`);
  }
});

test("ca: an attested host asking for another host's names gets its own (subjectFrom host), stamped for its own EK", async () => {
  const r = await enrolAttested(certee, "t-host", [{ CN: ["alice"] }], { dns: ["alice", "login.bank.example"] });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const cert = new x509.X509Certificate(r.body.certificatePem);
  assert.equal(cert.subject, "CN=certee");
  assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.map((n) => `${n.type}:${n.value}`), ["dns:certee"]);
  assert.deepEqual(r.body.policies, ["1.3.6.1.4.1.311.21.30"]);
});

test("acme: the control for the finalize attacks: CN=<host> and dns:<host> are issued; a refused CSR answers badCSR", async () => {
  const ok = await acmeFinalize([{ CN: ["certee"] }], ["certee"]);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.status, "valid");
  const bad = await acmeFinalize([{ CN: ["certee"] }, { CN: ["login.bank.example"] }]);
  assert.deepEqual([bad.status, bad.body.type, bad.body.code], [400, "urn:ietf:params:acme:error:badCSR", "ERR_POLICY_FAILED"]);
});

test("ca: required-if-capable with attestation that fails is issued without any attestation OID, the failure recorded and audited (event 22)", async () => {
  // alice's EK is neither allow-listed nor certified: ek-key fails
  const r = await enrolAttested(alice, "t-ric", [{ CN: ["a.corp.example"] }], { token: admin });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(new x509.X509Certificate(r.body.certificatePem).getExtension(x509.CertificatePolicyExtension), null);
  assert.deepEqual(r.body.policies, []);
  assert.equal(r.body.attestation, null);
  assert.equal(r.body.attestationFailure.code, "ERR_EK_NOT_TRUSTED");
  const rec = await call("GET", `/v1/ca/certs/${r.body.serial}`, undefined, admin);
  assert.equal(rec.body.attestation.outcome, "failed");
  assert.equal(rec.body.attestation.code, "ERR_EK_NOT_TRUSTED");
  const audit = await call("GET", "/v1/audit?limit=1000", undefined, admin);
  const entries = (audit.body.entries ?? audit.body) as { action: string; details: Record<string, unknown> }[];
  assert.ok(entries.some((e) => e.action === "ca.attestation.error" && e.details.adcsEvent === 22 && e.details.issuedWithoutAttestation === true));
});

// -- lockouts and floods: what an anonymous caller must not be able to do to a device or the database

/** A software DPS device enrolled on the attacks service, and its register path. */
async function dpsDevice() {
  const d = softDevice();
  const r = await call("POST", "/v1/provisioning/enrollments", { registrationId: d.registrationId, endorsementKey: encodeTpm2bPublic(d.ek).toString("base64") }, admin);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const idScope = (await s.store.provisioning.getIdScope())!;
  return { d, idScope, path: `/${idScope}/registrations/${d.registrationId}/register?api-version=2021-06-01` };
}
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
const stored = async () => Number((await rawSql(join(dir, "attacks.db"), "SELECT count(*) AS n FROM nonces"))[0].n);

test("dps: forged SAS tokens from an attacker's address lock that address out (429001), never the device with its key", async () => {
  const { d, idScope, path } = await dpsDevice();
  const forged = sasToken(Buffer.alloc(32, 0x66), idScope, d.registrationId, inAnHour());
  for (let i = 0; i < 5; i++) assert.equal((await callFrom("127.0.0.6", "PUT", path, d.body(), forged)).body.errorCode, 401002);
  const locked = await callFrom("127.0.0.6", "PUT", path, d.body(), forged);
  assert.deepEqual([locked.status, locked.body.errorCode], [429, 429001]);
  // the registration id is over its failure limit too: a forged token from the device's own address is 429 …
  assert.equal((await call("PUT", path, d.body(), forged)).body.errorCode, 429001);
  // … and the device, holding its key, still provisions
  const c = await call("PUT", path, d.body());
  assert.equal(c.status, 401, JSON.stringify(c.body));
  const r = await call("PUT", path, d.body(), sasToken(d.unwrap(c.body.authenticationKey), idScope, d.registrationId, inAnHour()));
  assert.equal(r.status, 202, JSON.stringify(r.body));
});

test("dps: an anonymous challenge for the device's EK (another SRK, or the device's own) between its challenge and its SAS does not invalidate its key", async () => {
  const { d, idScope, path } = await dpsDevice();
  const c = await call("PUT", path, d.body());
  assert.equal(c.status, 401, JSON.stringify(c.body));
  const otherSrk = { ...d.body(), tpm: { ...d.body().tpm, storageRootKey: encodeTpm2bPublic(softSrk().pub).toString("base64") } };
  assert.equal((await callFrom("127.0.0.7", "PUT", path, otherSrk)).status, 401);
  assert.equal((await callFrom("127.0.0.7", "PUT", path, d.body())).status, 401);
  const r = await call("PUT", path, d.body(), sasToken(d.unwrap(c.body.authenticationKey), idScope, d.registrationId, inAnHour()));
  assert.equal(r.status, 202, JSON.stringify(r.body));
});

test("ca: a flood of POST /v1/ca/challenge from one address is cut at its nonce limit (ERR_TOO_MANY_ATTEMPTS) and stores no more nonces; other addresses are served", async () => {
  let last: Answer | undefined;
  for (let i = 0; i < 300 && (!last || last.status === 201); i++) last = await callFrom("127.0.0.8", "POST", "/v1/ca/challenge");
  const before = await stored();
  for (let i = 0; i < 20; i++) {
    const r = await callFrom("127.0.0.8", "POST", "/v1/ca/challenge");
    assert.deepEqual([r.status, r.body.code], [429, "ERR_TOO_MANY_ATTEMPTS"]);
  }
  assert.equal(await stored(), before);
  assert.equal((await call("POST", "/v1/ca/challenge")).status, 201);
});

test("acme: a flood of new-nonce from one address is cut at its nonce limit (rateLimited, 429) and stores no more nonces; other addresses are served", async () => {
  let last: Answer | undefined;
  for (let i = 0; i < 300 && (!last || last.status < 400); i++) last = await callFrom("127.0.0.9", "HEAD", "/acme/new-nonce");
  const before = await stored();
  for (let i = 0; i < 20; i++) {
    const r = await callFrom("127.0.0.9", "GET", "/acme/new-nonce");
    assert.deepEqual([r.status, r.body.type, r.body.code, r.headers["replay-nonce"]], [429, "urn:ietf:params:acme:error:rateLimited", "ERR_TOO_MANY_ATTEMPTS", undefined]);
  }
  assert.equal(await stored(), before);
  assert.equal((await call("GET", "/acme/new-nonce")).status, 204);
});

test("audit: when the audit log cannot be written the decision it was to record fails (ERR_AUDIT_WRITE_FAILED), nothing of it is stored, and /metrics counts it", async () => {
  const db = join(dir, "attacks.db");
  const count = async (table: string) => Number((await rawSql(db, `SELECT count(*) AS n FROM ${table}`))[0].n);
  const failures = async () => {
    const text = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${admin}` } })).text();
    return Number(/^tpmtrust_audit_write_failures_total\{action="attestation\.verdict"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  };
  const [attestations, entries, counted] = [await count("attestations"), await count("audit"), await failures()];
  const ev = await evidence();
  await rawSql(db, "CREATE TRIGGER audit_down BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'the audit disk is full'); END");
  let r: Answer;
  try {
    r = await call("POST", "/v1/attestations", ev);
  } finally {
    await rawSql(db, "DROP TRIGGER audit_down");
  }
  assert.deepEqual([r.status, r.body.code, r.body.token], [503, "ERR_AUDIT_WRITE_FAILED", undefined], JSON.stringify(r.body));
  assert.equal(await count("attestations"), attestations, "no verdict recorded without its audit entry");
  assert.equal(await count("audit"), entries);
  assert.equal(await failures(), counted + 1);
  // the nonce was not spent: once the log can be written, the same evidence is judged
  assert.equal((await call("POST", "/v1/attestations", ev)).body.verdict, "pass");
});

test("audit: an administrative change whose audit entry cannot be written is not made (ERR_AUDIT_WRITE_FAILED, rolled back)", async () => {
  const db = join(dir, "attacks.db");
  const count = async (sql: string) => Number((await rawSql(db, sql))[0].n);
  const root = (await s.store.trust.listCaCerts("root"))[0];
  const ekHash = createHash("sha256").update("an EK nobody has").digest("hex");
  const state = async () => ({
    entries: await count("SELECT count(*) AS n FROM audit"),
    allowlist: await count("SELECT count(*) AS n FROM ek_allowlist"),
    revoked: await count("SELECT count(*) AS n FROM ek_revocations"),
    roots: (await s.store.trust.listCaCerts("root")).length,
    host: JSON.stringify(await s.store.hosts.get(alice.name)),
  });
  const before = await state();
  await rawSql(db, "CREATE TRIGGER audit_down BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'the audit disk is full'); END");
  try {
    for (const [method, path, body] of [
      ["POST", "/v1/trust/allowlist", { ekHash }],
      ["POST", "/v1/trust/revoked-eks", { ekHash }],
      ["DELETE", `/v1/trust/cas/${root.fingerprint}`, undefined],
      ["PATCH", `/v1/hosts/${alice.name}`, { hardwareClass: "elsewhere" }],
      ["DELETE", `/v1/hosts/${alice.name}`, undefined],
    ] as const) {
      const r = await call(method, path, body, admin);
      assert.deepEqual([r.status, r.body?.code], [503, "ERR_AUDIT_WRITE_FAILED"], `${method} ${path}: ${JSON.stringify(r.body)}`);
    }
  } finally {
    await rawSql(db, "DROP TRIGGER audit_down");
  }
  assert.deepEqual(await state(), before, "no change was made without its audit entry");
});

/** Runs `fn` while every audit insert fails (a trigger on the SQLite file). */
async function auditDown<T>(fn: () => Promise<T>): Promise<T> {
  const db = join(dir, "attacks.db");
  await rawSql(db, "CREATE TRIGGER audit_down BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'the audit disk is full'); END");
  try {
    return await fn();
  } finally {
    await rawSql(db, "DROP TRIGGER audit_down");
  }
}

const rows = async (sql: string) => Number((await rawSql(join(dir, "attacks.db"), sql))[0].n);

test("audit: an ACME account, order or certificate whose audit entry cannot be written is not made (ERR_AUDIT_WRITE_FAILED, 503); the order stays ready and is issued once the log is back", async () => {
  const ready = await acmeReady();
  const csr = await ready.csr([{ CN: ["certee"] }], ["certee"]);
  const state = async () => ({
    entries: await rows("SELECT count(*) AS n FROM audit"),
    accounts: await rows("SELECT count(*) AS n FROM acme_accounts"),
    orders: await rows("SELECT count(*) AS n FROM acme_orders"),
    certs: await rows("SELECT count(*) AS n FROM ca_certs"),
  });
  const before = await state();
  const unavailable = (r: { status: number; body: any }, what: string) =>
    assert.deepEqual([r.status, r.body?.type, r.body?.code], [503, "urn:ietf:params:acme:error:serverInternal", "ERR_AUDIT_WRITE_FAILED"], `${what}: ${JSON.stringify(r.body)}`);
  await auditDown(async () => {
    unavailable(await ready.client.post(ready.finalize, { csr }), "finalize");
    const stranger = await acmeClient();
    unavailable(await stranger.post(stranger.dir.newAccount, { termsOfServiceAgreed: true }), "newAccount");
    unavailable(await ready.client.post(ready.client.dir.newOrder, { identifiers: [{ type: "permanent-identifier", value: certee.name }] }), "newOrder");
  });
  assert.deepEqual(await state(), before, "no account, order or certificate without its audit entry");
  assert.equal((await ready.client.post(ready.order, undefined)).body.status, "ready");
  const issued = await ready.client.post(ready.finalize, { csr });
  assert.deepEqual([issued.status, issued.body.status], [200, "valid"], JSON.stringify(issued.body));
  assert.equal(await rows("SELECT count(*) AS n FROM ca_certs"), before.certs + 1);
});

test("audit: an enrollment or a revocation whose audit entry cannot be written is not made: no certificate, the certificate not revoked, no CRL (ERR_AUDIT_WRITE_FAILED)", async () => {
  const issued = await enrolPlain("t-none", [{ CN: ["audited.corp.example"] }], { token: admin });
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  const revoke = () => call("POST", `/v1/ca/certs/${issued.body.serial}/revoke`, { reason: "keyCompromise" }, admin);
  const state = async () => ({
    entries: await rows("SELECT count(*) AS n FROM audit"),
    certs: await rows("SELECT count(*) AS n FROM ca_certs"),
    revoked: await rows("SELECT count(*) AS n FROM ca_certs WHERE revoked_at IS NOT NULL"),
    crls: await rows("SELECT count(*) AS n FROM ca_crls"),
  });
  const before = await state();
  await auditDown(async () => {
    for (const r of [await enrolPlain("t-none", [{ CN: ["unaudited.corp.example"] }], { token: admin }), await revoke()]) {
      assert.deepEqual([r.status, r.body?.code, r.body?.certificatePem], [503, "ERR_AUDIT_WRITE_FAILED", undefined], JSON.stringify(r.body));
    }
  });
  assert.deepEqual(await state(), before, "no certificate issued or revoked, no CRL, without its audit entry");
  const r = await revoke();
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(await state(), { ...before, entries: before.entries + 1, revoked: before.revoked + 1, crls: before.crls + 1 });
});

/**
 * A host that is registered but has no AK bound, whose EK private key the test holds: it answers
 * ActivateCredential in software (TPM 2.0 Part 3 §12.5: recover the seed, open the outer wrap keyed
 * by the AK's Name, the credential is the TPM2B_DIGEST inside).
 */
async function activatableHost(name: string) {
  const ek = eccEk();
  const ekPublic = encodeTpmtPublic(ek.pub);
  const ak = softHost(name);
  await s.store.hosts.add({ at: Date.now(), name, hardwareClass: "gce-n1", policyVersion: "v2", trustMethod: "ek-cert", eks: [{ name: objectName(ek.pub), public: ekPublic, cert: await testEkCertificate(ekPublic) }] });
  /** Starts an activation and answers it; with `answerAuditDown` the answer is sent while the audit log cannot be written. */
  const activate = async (answerAuditDown = false): Promise<Answer> => {
    const start = await call("POST", "/v1/activations", { ekPublic: b64(tpm2b(ekPublic)), akPublic: b64(tpm2b(ak.akPublic)) });
    assert.ok(start.body.activationId, JSON.stringify(start.body));
    const seed = recoverSeed(ek.pub, ek.priv, Buffer.from(start.body.encryptedSecret, "base64").subarray(2), "IDENTITY");
    const secret = new Reader(openOuterWrap(ek.pub, seed, ak.akName, Buffer.from(start.body.credentialBlob, "base64").subarray(2))).tpm2b("credential");
    const answer = () => call("POST", `/v1/activations/${start.body.activationId}`, { secret: b64(secret) });
    return answerAuditDown ? auditDown(answer) : answer();
  };
  return { ak, activate };
}

test("audit: an AK activation whose audit entry cannot be written binds nothing and records no AK certificate (ERR_AUDIT_WRITE_FAILED, 503); a fresh activation succeeds once the log is back", async () => {
  const { ak, activate } = await activatableHost("akaudit");
  const state = async () => ({
    entries: await rows("SELECT count(*) AS n FROM audit"),
    aks: await rows("SELECT count(*) AS n FROM aks"),
    certs: await rows("SELECT count(*) AS n FROM ca_certs"),
  });
  await attestationCa(s.store, Date.now()); // created beforehand, so only the activation's own writes are counted
  let before = await state();
  const r = await activate(true);
  assert.deepEqual([r.status, r.body?.code, r.body?.akCertificate], [503, "ERR_AUDIT_WRITE_FAILED", undefined], JSON.stringify(r.body));
  // the start of the activation was audited before the log went down; the answer left nothing
  before = { ...before, entries: before.entries + 1 };
  assert.deepEqual(await state(), before, "no AK bound, no AK certificate, without its audit entry");
  assert.equal(await s.store.aks.get(ak.akName), undefined);
  const done = await activate();
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.ok(done.body.akCertificate, JSON.stringify(done.body));
  assert.equal((await s.store.aks.get(ak.akName))?.hostName, "akaudit");
  assert.deepEqual(await state(), { entries: before.entries + 2, aks: before.aks + 1, certs: before.certs + 1 });
});

test("keys: a key server naming a module or KMIP file outside its place is refused with one message whether the path exists or not (it is never looked at), and nothing is stored", async () => {
  const servers = async () => JSON.stringify((await call("GET", "/v1/keys/servers", undefined, admin)).body);
  const entries = () => rows("SELECT count(*) AS n FROM audit WHERE action = 'keys.server.add'");
  const [listed, added] = [await servers(), await entries()];
  const existing = outsideFile();
  const missing = join(outside, "no-such-file.so");
  for (const [kind, setting, base] of [["pkcs11", "module", hsmSettings], ["kmip", "ca", kmipSettings], ["kmip", "cert", kmipSettings], ["kmip", "key", kmipSettings]] as const) {
    const [a, b] = [await addServer("probe-exists", kind, { ...base, [setting]: existing }), await addServer("probe-missing", kind, { ...base, [setting]: missing })];
    assert.deepEqual([a.status, a.body.code], [400, "ERR_VALIDATION"], JSON.stringify(a.body));
    assert.deepEqual([b.status, b.body.code], [400, "ERR_VALIDATION"], JSON.stringify(b.body));
    assert.deepEqual([a.body.detail, a.body.details], [b.body.detail, b.body.details], `${kind} ${setting}: the answer tells nothing about the path`);
    assert.ok(!JSON.stringify(a.body).includes(outside), `${kind} ${setting}: the answer does not echo the path`);
  }
  assert.equal(await servers(), listed);
  assert.equal(await entries(), added);
});

for (const a of ATTACKS) {
  test(`${a.flow}: ${a.name} → ${a.code}`, async () => {
    const healthBefore = (await s.store.hosts.get(alice.name))!.health;
    const r = await a.run();
    if (a.status === 200) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.verdict, "fail");
      assert.equal(r.body.code, a.code, JSON.stringify(r.body).slice(0, 400));
      assert.equal(r.body.token, undefined);
    } else {
      assert.equal(r.body?.code, a.code, `HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
      assert.ok(r.status >= 400 && r.status < 500, `HTTP ${r.status}`);
      if (a.status) assert.equal(r.status, a.status);
      // evidence the TPM did not sign over a fresh nonce never changes the host's health
      if (a.flow === "attestation") assert.equal((await s.store.hosts.get(alice.name))!.health, healthBefore);
    }
  });
}

// ---- trust withdrawn: each takes effect at the next decision that relies on it

/** A healthy host with a token: seeded (v2, EK certificate from the test root) and attested once. */
async function attestedHost(name: string): Promise<{ host: SoftHost; token: string }> {
  const host = softHost(name);
  await seedHosts(s.store, [host]);
  const r = await attestWith({ host });
  assert.equal(r.body.verdict, "pass", JSON.stringify(r.body));
  return { host, token: r.body.token };
}

const encryptWith = (token: string) => call("POST", "/v1/keys/vault/encrypt", { plaintext: b64(Buffer.from("secret")) }, token);
const releaseWith = (token: string) => call("POST", "/v1/keys/vault/release", { srk: { public: b64(Buffer.alloc(8)), attest: b64(Buffer.alloc(8)), signature: b64(Buffer.alloc(8)) } }, token);

function refused(r: Answer, code: string): void {
  assert.equal(r.body?.code, code, `HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
  assert.ok(r.status >= 400 && r.status < 500, `HTTP ${r.status}`);
}

async function healthAudit(host: string): Promise<Record<string, any>> {
  const r = await call("GET", `/v1/audit?action=host.health&subject=${host}&order=desc&limit=1`, undefined, admin);
  return r.body.entries[0].details;
}

test("trust: every EK root deleted → the v2 host turns unhealthy at once (ERR_EK_NOT_TRUSTED), its tokens revoked, key operations, release and attestation refused", async () => {
  const { host, token } = await attestedHost("carol");
  // the control: token and trust accepted, refused only for want of a cluster
  refused(await encryptWith(token), "ERR_FORBIDDEN");
  const roots = await s.store.trust.listCaCerts("root");
  try {
    for (const r of roots) assert.equal((await call("DELETE", `/v1/trust/cas/${r.fingerprint}`, undefined, admin)).status, 204);
    // the trust sweep runs after the change, without waiting for the host's next attestation
    while ((await s.store.hosts.get(host.name))!.health !== "unhealthy") await delay(20);
    refused(await encryptWith(token), "ERR_TOKEN_REVOKED");
    refused(await releaseWith(token), "ERR_TOKEN_REVOKED");
    const v = await attestWith({ host });
    assert.equal(v.status, 200);
    assert.equal(v.body.verdict, "fail");
    assert.equal(v.body.code, "ERR_EK_NOT_TRUSTED");
    assert.equal(v.body.token, undefined);
    const h = (await s.store.hosts.get(host.name))!;
    assert.deepEqual([h.health, h.healthReason], ["unhealthy", "ERR_EK_NOT_TRUSTED"]);
    const audit = await healthAudit(host.name);
    assert.equal(audit.reason, "ERR_EK_NOT_TRUSTED");
    assert.equal(audit.revokedTokens, 1);
    refused(await encryptWith(token), "ERR_TOKEN_REVOKED");
  } finally {
    for (const r of roots) await s.store.trust.addCaCert("root", r.der, r.subject, Date.now());
  }
  // trust restored: the host attests back to health
  assert.equal((await attestWith({ host })).body.verdict, "pass");
});

test("trust: a v1 host's allow-list entry removed → its attestation fails (ERR_EK_NOT_TRUSTED)", async () => {
  const dave = softHost("dave");
  await addPolicy(s.store, "test", Date.now(), { kind: "baseline", name: "fleet-v1", hardwareClass: "fleet-v1", policyVersion: "v1", document: learnBaseline("fleet-v1", [parseEventLog(FLEET_LOG)], [0, 1, 2, 3, 4, 5, 6, 7]) });
  assert.equal((await call("POST", "/v1/trust/allowlist", { ekHash: dave.ekHash }, admin)).status, 201);
  const reg = await call("POST", "/v1/hosts", { name: dave.name, hardwareClass: "fleet-v1", policyVersion: "v1", identity: identityOf(dave) }, admin);
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  await s.store.aks.bind({ at: Date.now(), hostName: dave.name, name: dave.akName, public: dave.akPublic });
  assert.equal((await attestWith({ host: dave })).body.verdict, "pass");
  assert.equal((await call("DELETE", `/v1/trust/allowlist/${dave.ekHash}`, undefined, admin)).status, 204);
  const v = await attestWith({ host: dave });
  assert.deepEqual([v.body.verdict, v.body.code], ["fail", "ERR_EK_NOT_TRUSTED"]);
});

test("trust: a v1 host's file removed from an allow-list folder → its attestation fails (ERR_EK_NOT_TRUSTED)", async () => {
  const frank = softHost("frank");
  const folder = mkdtempSync(join(dir, "ekpub-"));
  writeFileSync(join(folder, frank.ekHash), "");
  assert.equal((await call("POST", "/v1/trust/allowlist-dirs", { path: folder }, admin)).status, 201);
  const reg = await call("POST", "/v1/hosts", { name: frank.name, hardwareClass: "fleet-v1", policyVersion: "v1", identity: identityOf(frank) }, admin);
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  await s.store.aks.bind({ at: Date.now(), hostName: frank.name, name: frank.akName, public: frank.akPublic });
  assert.equal((await attestWith({ host: frank })).body.verdict, "pass");
  unlinkSync(join(folder, frank.ekHash));
  const v = await attestWith({ host: frank });
  assert.deepEqual([v.body.verdict, v.body.code], ["fail", "ERR_EK_NOT_TRUSTED"]);
});

test("trust: a disabled host → unhealthy at once, tokens revoked, attestation fails and activation refused (ERR_DISABLED) until enabled", async () => {
  const { host, token } = await attestedHost("erin");
  const d = await call("POST", `/v1/hosts/${host.name}/disable`, {}, admin);
  assert.equal(d.status, 200, JSON.stringify(d.body));
  assert.deepEqual([d.body.health, d.body.healthReason], ["unhealthy", "ERR_DISABLED"]);
  assert.equal((await healthAudit(host.name)).revokedTokens, 1);
  refused(await encryptWith(token), "ERR_TOKEN_REVOKED");
  const v = await attestWith({ host });
  assert.deepEqual([v.body.verdict, v.body.code, v.body.token], ["fail", "ERR_DISABLED", undefined]);
  refused(await call("POST", "/v1/activations", { ekPublic: b64(tpm2b(host.ekPublic)), akPublic: b64(akLike((t) => t)) }), "ERR_DISABLED");
  refused(await call("POST", `/v1/hosts/${host.name}/disable`, {}, auditor), "ERR_FORBIDDEN");
  assert.equal((await call("POST", `/v1/hosts/${host.name}/enable`, {}, admin)).status, 200);
  assert.equal((await attestWith({ host })).body.verdict, "pass");
});
