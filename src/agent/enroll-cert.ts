/**
 * `tpmtrust agent enroll-cert`: a certificate for a key that never leaves this TPM (docs/api.md § CA).
 *
 *   TPM2_Create under the SRK (fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign)
 *   → POST /v1/ca/challenge → TPM2_Certify(key) by the bound AK with the nonce as qualifying data
 *   → PKCS#10 CSR signed inside the TPM (TPM2_Sign) → POST /v1/ca/enroll
 *   → certificate, chain and the key's blobs in <state-dir>/certs/<serial>/
 */
import * as x509 from "@peculiar/x509";
import { createHash, webcrypto } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { spkiFromTpmt } from "../crypto/keys.js";
import { TpmTrustError } from "../errors.js";
import { TPMA_OBJECT, TPM_ALG, TPM_ECC } from "../tpm/constants.js";
import { Certify, Create, type CreateResult, FlushContext, Load, Sign, type TpmClient } from "../tpm/commands/index.js";
import { encodeTpm2bPrivate } from "../tpm/structures.js";
import type { TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { withAk } from "./attest.js";
import type { ServiceClient } from "./http.js";
import { withSrk } from "./keys.js";
import { readState } from "./state.js";
import { tpm2bPublic } from "./tpm.js";

export interface EnrollCertOptions {
  stateDir: string;
  template: string;
  /** RFC 4514-style subject, e.g. "CN=host1.example, O=Example" */
  subject: string;
  keyAlg?: "rsa" | "ecc";
  /** DNS subjectAltNames to request */
  dns?: string[];
  log?: Logger;
}

export interface EnrolledCert {
  serial: string;
  subject: string;
  policies: string[];
  trustModels: string[];
  /** the folder holding cert.pem, chain.pem, key.pub, key.priv, enrollment.json */
  dir: string;
}

interface EnrollAnswer {
  serial: string;
  subject: string;
  certificatePem: string;
  chainPem: string;
  policies: string[];
  trustModels: string[];
}

// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign: a key that cannot leave this TPM
const KEY_ATTRS = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.sign;

/** An unrestricted signing key template (Part 2 §12.2.4): RSA-2048 RSASSA-SHA256 or P-256 ECDSA-SHA256. */
export function signingKeyTemplate(alg: "rsa" | "ecc"): TpmtPublic {
  const base = { nameAlg: TPM_ALG.SHA256, objectAttributes: KEY_ATTRS, authPolicy: Buffer.alloc(0) };
  if (alg === "rsa") {
    return { type: TPM_ALG.RSA, ...base, parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }, keyBits: 2048, exponent: 0 }, unique: Buffer.alloc(0) };
  }
  return {
    type: TPM_ALG.ECC,
    ...base,
    parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }, curveID: TPM_ECC.NIST_P256, kdf: { scheme: TPM_ALG.NULL } },
    unique: { x: Buffer.alloc(0), y: Buffer.alloc(0) },
  };
}

/** WebCrypto's form of a TPM signature: the RSA signature, or r‖s each padded to the curve size. */
function webSignature(sig: TpmtSignature, curveBytes = 32): Buffer {
  if ("sig" in sig) return sig.sig;
  if ("r" in sig) {
    const pad = (v: Buffer) => (v.length >= curveBytes ? v : Buffer.concat([Buffer.alloc(curveBytes - v.length), v]));
    return Buffer.concat([pad(sig.r), pad(sig.s)]);
  }
  throw new TpmTrustError("ERR_SIGNATURE_SCHEME", "the TPM returned a signature that is neither RSA nor ECDSA");
}

/**
 * A WebCrypto provider whose `sign` runs TPM2_Sign with the loaded key at `handle` (SHA-256 digest
 * computed here; unrestricted keys need no hashcheck ticket), for @peculiar/x509's generators.
 */
function tpmCrypto(tpm: TpmClient, handle: number, key: TpmtPublic): Crypto {
  const scheme = key.type === TPM_ALG.RSA ? { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 } : { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 };
  const subtle = {
    exportKey: (format: "spki", k: CryptoKey) => webcrypto.subtle.exportKey(format, k),
    sign: async (_alg: unknown, _key: unknown, data: BufferSource) => {
      const bytes = ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data as ArrayBuffer);
      const sig = await tpm.run(Sign, { keyHandle: handle, digest: createHash("sha256").update(bytes).digest(), inScheme: scheme });
      return new Uint8Array(webSignature(sig)).buffer;
    },
  };
  return { subtle } as unknown as Crypto;
}

/** A PKCS#10 CSR for the TPM key at `handle`, signed inside the TPM. */
export async function tpmCsr(tpm: TpmClient, handle: number, key: TpmtPublic, o: { subject: string; dns?: string[]; attributes?: x509.Attribute[] }): Promise<Buffer> {
  const rsa = key.type === TPM_ALG.RSA;
  const alg = rsa ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } : { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const publicKey = (await webcrypto.subtle.importKey("spki", spkiFromTpmt(key), rsa ? alg : { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"])) as CryptoKey;
  // the private half stays in the TPM: a stand-in carrying only the algorithm the generator reads
  const privateKey = { algorithm: rsa ? { name: alg.name, hash: { name: "SHA-256" } } : { name: "ECDSA", namedCurve: "P-256" }, type: "private" } as unknown as CryptoKey;
  let name: x509.Name;
  try {
    name = new x509.Name(o.subject);
  } catch (e) {
    throw new TpmTrustError("ERR_USAGE", `--subject ${JSON.stringify(o.subject)} is not a distinguished name: ${(e as Error).message}`);
  }
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name,
      keys: { privateKey, publicKey },
      signingAlgorithm: rsa ? { name: "RSASSA-PKCS1-v1_5" } : ({ name: "ECDSA", hash: "SHA-256" } as EcdsaParams),
      ...(o.attributes?.length ? { attributes: o.attributes } : {}),
      ...(o.dns?.length ? { extensions: [new x509.SubjectAlternativeNameExtension(o.dns.map((value) => ({ type: "dns" as const, value })))] } : {}),
    },
    tpmCrypto(tpm, handle, key),
  );
  return Buffer.from(csr.rawData);
}

/** A new signing key under the SRK, loaded (the caller flushes `handle`); a transient SRK is flushed at once (swtpm holds only three objects). */
export async function createTpmKey(tpm: TpmClient, alg: "rsa" | "ecc"): Promise<{ handle: number; created: CreateResult }> {
  return withSrk(tpm, async (srk) => {
    const created = await tpm.run(Create, { parentHandle: srk.handle, inPublic: signingKeyTemplate(alg) });
    const { handle } = await tpm.run(Load, { parentHandle: srk.handle, inPrivate: created.private, inPublic: created.public });
    return { handle, created };
  });
}

/** Writes a certificate with its chain and the key's blobs (reloadable under the SRK) to <state-dir>/certs/<serial>/ (0600 files). */
export function storeCertificate(stateDir: string, o: { serial: string; certificatePem: string; chainPem: string; key: CreateResult; meta: Record<string, unknown> }): string {
  const dir = join(stateDir, "certs", o.serial);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const write = (file: string, data: string | Buffer) => writeFileSync(join(dir, file), data, { mode: 0o600 });
    write("cert.pem", o.certificatePem);
    write("chain.pem", o.chainPem);
    write("key.pub", tpm2bPublic(o.key.publicArea));
    write("key.priv", encodeTpm2bPrivate(o.key.private));
    write("enrollment.json", JSON.stringify({ serial: o.serial, ...o.meta, parent: "srk", enrolledAt: new Date().toISOString() }, null, 2) + "\n");
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot write ${dir}: ${(e as Error).message}`, { path: dir });
  }
  return dir;
}

/** Creates a TPM key, proves it with the bound AK, enrolls it under `template`, and stores the result. */
export async function enrollCert(tpm: TpmClient, service: ServiceClient, o: EnrollCertOptions): Promise<EnrolledCert> {
  const state = readState(o.stateDir);
  const alg = o.keyAlg ?? "ecc";
  const key = await createTpmKey(tpm, alg);
  try {
    const challenge = await service.post<{ nonceHex: string }>("/v1/ca/challenge", {});
    if (typeof challenge?.nonceHex !== "string" || !/^([0-9a-f]{2})+$/i.test(challenge.nonceHex)) throw new TpmTrustError("ERR_UNREACHABLE", "the CA's challenge answer has no nonce");
    const certify = await withAk(tpm, state, (ak) => tpm.run(Certify, { objectHandle: key.handle, signHandle: ak, qualifyingData: Buffer.from(challenge.nonceHex, "hex") }));
    const csr = await tpmCsr(tpm, key.handle, key.created.public, o);
    o.log?.info({ template: o.template, subject: o.subject, keyAlg: alg }, "key created and certified; enrolling");
    const r = await service.post<EnrollAnswer>("/v1/ca/enroll", {
      template: o.template,
      csr: csr.toString("base64"),
      attestation: {
        keyPublic: tpm2bPublic(key.created.publicArea).toString("base64"),
        certify: { attest: certify.attest.toString("base64"), signature: certify.signatureBytes.toString("base64") },
        akNameHex: state.akNameHex,
      },
    });
    if (typeof r?.serial !== "string" || !/^[0-9a-f]+$/.test(r.serial) || typeof r.certificatePem !== "string") throw new TpmTrustError("ERR_UNREACHABLE", "the CA's answer has no certificate");
    const dir = storeCertificate(o.stateDir, {
      serial: r.serial,
      certificatePem: r.certificatePem,
      chainPem: r.chainPem,
      key: key.created,
      meta: { template: o.template, subject: r.subject, policies: r.policies, trustModels: r.trustModels, keyAlg: alg },
    });
    return { serial: r.serial, subject: r.subject, policies: r.policies, trustModels: r.trustModels, dir };
  } finally {
    await tpm.run(FlushContext, { flushHandle: key.handle }).catch(() => undefined);
  }
}
