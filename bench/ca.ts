/**
 * Key attestation CA throughput, server side: attested certificate issuances per second through
 * `enroll` (CSR parse and signature, template rules, TPM2_Certify verification by a bound AK,
 * CSR key = certified key, nonce consumption, ek-key trust model, signing, storing, audit) on a
 * SQLite store, against raw certificate signing with the same CA key in the same process.
 * Evidence is pre-generated in software with the exact TPM wire formats (a software "AK" bound to a
 * host as credential activation would), one single-use nonce per issuance.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPublicKey, sign, webcrypto } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compare, type BenchFigure } from "./lib.js";
import { AK_ATTRS, tpmtFromKey } from "./quote.js";
import { initCa, loadAuthority } from "../src/ca/authority.js";
import { enroll, enrollChallenge, type EnrollRequest } from "../src/ca/enroll.js";
import { randomSerial, signCertificate, toSecond } from "../src/ca/signing.js";
import { putTemplate } from "../src/ca/templates.js";
import { newKeyPair } from "../src/crypto/keygen.js";
import { openStore } from "../src/store/index.js";
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "../src/tpm/constants.js";
import { encodeTpm2bPublic, encodeTpmsAttest, encodeTpmtPublic, encodeTpmtSignature, objectName } from "../src/tpm/structures.js";
import { ekHash } from "../src/verify/ek/index.js";

const EK_ATTRS = 0x000300b2;
const KEY_ATTRS = 0x00040072; // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign
const POOL = 2500;

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-bench-ca-"));
  const store = await openStore(join(dir, "db.sqlite"));
  try {
    const now = Date.now();
    await initCa(store, { actor: "bench", now, keyDir: join(dir, "keys") });
    await putTemplate(store, { name: "bench", keyAttestation: { mode: "required", trustModels: ["ek-key"] } }, { actor: "bench", now });
    const ek = tpmtFromKey(newKeyPair("ecdsa-p256").privateKey, EK_ATTRS);
    const akKey = newKeyPair("ecdsa-p256").privateKey;
    const ak = tpmtFromKey(akKey, AK_ATTRS);
    await store.hosts.add({ name: "bench-host", hardwareClass: "bench", policyVersion: "v1", eks: [{ name: objectName(ek), public: encodeTpmtPublic(ek), cert: null }], at: now });
    await store.aks.bind({ hostName: "bench-host", name: objectName(ak), public: encodeTpmtPublic(ak), at: now });
    await store.trust.addAllowlist(ekHash(ek), { label: "bench", source: "bench", at: now });

    // one TPM key and CSR; a fresh nonce and TPM2_Certify per issuance
    const keyPair = newKeyPair("ecdsa-p256");
    const keyPub = tpmtFromKey(keyPair.privateKey, KEY_ATTRS);
    const keys = {
      privateKey: (await webcrypto.subtle.importKey("pkcs8", keyPair.privateKey.export({ type: "pkcs8", format: "der" }), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"])) as CryptoKey,
      publicKey: (await webcrypto.subtle.importKey("spki", keyPair.publicKey.export({ type: "spki", format: "der" }), { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"])) as CryptoKey,
    };
    const csr = Buffer.from((await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=bench.example", keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams })).rawData);
    const keyPublic = encodeTpm2bPublic(keyPub);
    const pool: EnrollRequest[] = [];
    for (let i = 0; i < POOL; i++) {
      const { nonce } = await enrollChallenge(store, now, { source: "bench", limit: 0, windowMs: 0 });
      const attest = encodeTpmsAttest({
        magic: TPM_GENERATED_VALUE,
        type: TPM_ST.ATTEST_CERTIFY,
        qualifiedSigner: objectName(ak),
        extraData: nonce,
        clockInfo: { clock: BigInt(i), resetCount: 0, restartCount: 0, safe: true },
        firmwareVersion: 1n,
        attested: { name: objectName(keyPub), qualifiedName: objectName(keyPub) },
      });
      const rs = sign("sha256", attest, { key: akKey, dsaEncoding: "ieee-p1363" });
      const signature = encodeTpmtSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: rs.subarray(0, 32), s: rs.subarray(32) });
      pool.push({ template: "bench", csr, evidence: { keyPublic, attest, signature, akNameHex: objectName(ak).toString("hex") } });
    }

    let next = 0;
    const caller = { actor: "bench", admin: false };
    const issue = async () => {
      const req = pool[next++];
      if (!req) throw new Error(`bench/ca: the pool of ${POOL} pre-generated requests ran out`);
      const r = await enroll(store, req, { ...caller, now: Date.now() });
      if (r.policies.length !== 1) throw new Error("bench/ca: issuance without the ek-key policy");
    };
    const { signer } = await loadAuthority(store);
    const spki = createPublicKey(keyPair.privateKey).export({ type: "spki", format: "der" });
    const rawSign = () =>
      signCertificate(
        { issuer: signer, publicKey: spki, subject: "CN=bench.example", notBefore: toSecond(Date.now()), notAfter: new Date(Date.now() + 86_400_000), extensions: [new x509.BasicConstraintsExtension(false, undefined, true)] },
        randomSerial(),
      );
    return [
      await compare("attested certificate issuance (enroll, ECDSA P-256 CA, SQLite)", issue, "raw certificate signing (same CA key)", rawSign, {
        runs: 3,
        ms: 300,
        unit: "certificates/s",
        goal: "≥ 50 certificates/s on 2 cores; ≥ 0.3 of raw signing",
      }),
    ];
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
