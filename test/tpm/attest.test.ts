/**
 * tpmtrust's client against swtpm: AKs under the EK, quotes that tpm2_checkquote accepts,
 * certify and certify-creation statements, signing, credential activation (with the RC of a
 * missing EK policy), Import of a software-made duplicate and TPM2_HMAC with it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeCredentialFile, makeCredential } from "../../src/crypto/credential.js";
import { createDuplicate, hmacKeyObject } from "../../src/crypto/duplicate.js";
import { TPM_ALG, TPM_RH, TPMA_OBJECT } from "../../src/tpm/constants.js";
import {
  ActivateCredential,
  Certify,
  CertifyCreation,
  Create,
  createAk,
  type CreatedKey,
  createEk,
  CreatePrimary,
  type CreatePrimaryResult,
  ekAuth,
  FlushContext,
  getHandles,
  HMAC,
  Import,
  Load,
  PCR_Extend,
  pcrReadAll,
  Quote,
  Sign,
  TpmClient,
} from "../../src/tpm/commands/index.js";
import { TpmRcError } from "../../src/tpm/rc.js";
import {
  decodeTpm2bEncryptedSecret,
  decodeTpm2bIdObject,
  decodeTpm2bPrivate,
  decodeTpm2bPublic,
  encodeTpm2bPublic,
  encodeTpmsCreationData,
  handleName,
  hashOf,
  objectName,
  pcrSelection,
  qualifiedName,
} from "../../src/tpm/structures.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { runTool, ToolError, tpm2 } from "../helpers/tpm2tools.js";

let tpm: Swtpm;
let client: TpmClient;
let dir: string;
let ek: CreatePrimaryResult;
let akRsa: CreatedKey;
let akEcc: CreatedKey;
const toolsAk: Record<string, TpmtPublic> = {};
const f = (name: string) => join(dir, name);
const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest();

const isRc = (name: string) => (e: unknown) => e instanceof TpmRcError && e.code === "ERR_TPM_RC" && e.rc.name === name;

/** PEM of a public area, converted by tpm2-tools (independent of tpmtrust's key code). */
async function pem(pub: TpmtPublic, file: string): Promise<string> {
  writeFileSync(f(file), encodeTpm2bPublic(pub));
  return (await runTool("tpm2_print", ["-t", "TPM2B_PUBLIC", "-f", "pem", f(file)])).toString();
}

before(async () => {
  tpm = await startSwtpm();
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-attest-"));
  // reference AKs from tpm2-tools, made before tpmtrust's objects take the 3 object slots
  await tpm2(tpm, "tpm2_createek", ["-G", "rsa", "-c", f("tools-ek.ctx")]);
  for (const [k, g, s] of [
    ["rsa", "rsa", "rsassa"],
    ["ecc", "ecc", "ecdsa"],
  ]) {
    await tpm2(tpm, "tpm2_createak", ["-C", f("tools-ek.ctx"), "-c", f(`tools-ak-${k}.ctx`), "-G", g, "-g", "sha256", "-s", s, "-u", f(`tools-ak-${k}.pub`)]);
    toolsAk[k] = decodeTpm2bPublic(readFileSync(f(`tools-ak-${k}.pub`)));
  }
  client = new TpmClient(new SwtpmTransport({ port: tpm.port }));
  ek = await createEk(client, "rsa2048");
  akRsa = await createAk(client, ek, { type: "rsa" });
  akEcc = await createAk(client, ek, { type: "ecc" });
});
after(async () => {
  await tpm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("AKs: restricted signing keys like tpm2_createak's, with Names and qualified names under the EK", () => {
  for (const [k, ak] of [
    ["rsa", akRsa],
    ["ecc", akEcc],
  ] as const) {
    assert.equal(ak.public.objectAttributes, 0x00050072, k);
    const { unique: _u, ...mine } = ak.public;
    const { unique: _t, ...tools } = toolsAk[k];
    assert.deepEqual(mine, tools, `${k} AK has tpm2_createak's template`);
    assert.deepEqual(ak.name, objectName(ak.public));
    assert.deepEqual(ak.qualifiedName, qualifiedName(qualifiedName(handleName(TPM_RH.ENDORSEMENT), ek.name), ak.name));
  }
});

test("quotes by RSA and ECC AKs: fields as asked, and tpm2_checkquote accepts them", async () => {
  await client.run(PCR_Extend, { pcrHandle: 16, digests: [{ hashAlg: TPM_ALG.SHA256, digest: sha256("tpmtrust-pcr16-event") }] });
  await client.run(PCR_Extend, { pcrHandle: 3, digests: [{ hashAlg: TPM_ALG.SHA256, digest: sha256("tpmtrust-pcr3-event") }] });
  const nonce = sha256("tpmtrust-quote-nonce");
  const sel = pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 3, 16]);
  const { values } = await pcrReadAll(client, [sel]);
  const concat = Buffer.concat([0, 1, 2, 3, 16].map((p) => values.get(TPM_ALG.SHA256)!.get(p)!));
  // the tools' own PCR file: tpm2_checkquote takes only the host-endian "serialized" form
  await tpm2(tpm, "tpm2_pcrread", ["sha256:0,1,2,3,16", "-o", f("pcrs.serialized"), "-F", "serialized"], { flush: false });
  for (const [k, ak] of [
    ["rsa", akRsa],
    ["ecc", akEcc],
  ] as const) {
    const q = await client.run(Quote, { signHandle: ak.handle, qualifyingData: nonce, PCRselect: [sel] });
    assert.equal(q.attested.type, 0x8018);
    assert.deepEqual(q.attested.extraData, nonce);
    assert.deepEqual(q.attested.qualifiedSigner, ak.qualifiedName);
    assert.ok(q.attested.type === 0x8018 && q.attested.attested.pcrDigest.equals(sha256(concat)));
    assert.equal(q.signature.sigAlg, k === "rsa" ? TPM_ALG.RSASSA : TPM_ALG.ECDSA);
    writeFileSync(f(`ak-${k}.pub`), encodeTpm2bPublic(ak.public));
    writeFileSync(f(`quote-${k}.msg`), q.attest);
    writeFileSync(f(`quote-${k}.sig`), q.signatureBytes);
    const check = (nonceHex: string, akFile = `ak-${k}.pub`) =>
      runTool("tpm2_checkquote", ["-u", f(akFile), "-m", f(`quote-${k}.msg`), "-s", f(`quote-${k}.sig`), "-f", f("pcrs.serialized"), "-g", "sha256", "-q", nonceHex]);
    await check(nonce.toString("hex"));
    await assert.rejects(check("00"), ToolError, "wrong nonce");
    await assert.rejects(check(nonce.toString("hex"), `ak-${k === "rsa" ? "ecc" : "rsa"}.pub`), ToolError, "other AK");
  }
});

test("ActivateCredential: tpm2_makecredential and tpmtrust blobs; the EK without its policy session is TPM_RC_AUTH_UNAVAILABLE", async () => {
  const secret = Buffer.from("tpmtrust-credential-secret-32by!");
  writeFileSync(f("secret.bin"), secret);
  writeFileSync(f("ek.pub"), encodeTpm2bPublic(ek.public));
  await runTool("tpm2_makecredential", ["-T", "none", "-u", f("ek.pub"), "-s", f("secret.bin"), "-n", akRsa.name.toString("hex"), "-o", f("cred.blob")]);
  const tools = decodeCredentialFile(readFileSync(f("cred.blob")));
  const ours = makeCredential(ek.public, akEcc.name, secret);
  const parts = (c: { credentialBlob: Buffer; secret: Buffer }) => [decodeTpm2bIdObject(c.credentialBlob), decodeTpm2bEncryptedSecret(c.secret)] as const;

  const [toolsId, toolsSeed] = parts(tools);
  assert.deepEqual(await client.run(ActivateCredential, {
    activateHandle: akRsa.handle,
    keyHandle: ek.handle,
    credentialBlob: toolsId,
    secret: toolsSeed,
    keyAuth: await ekAuth(client, ek.public),
  }), secret);
  const [oursId, oursSeed] = parts(ours);
  assert.deepEqual(await client.run(ActivateCredential, {
    activateHandle: akEcc.handle,
    keyHandle: ek.handle,
    credentialBlob: oursId,
    secret: oursSeed,
    keyAuth: await ekAuth(client, ek.public),
  }), secret);

  await assert.rejects(client.run(ActivateCredential, { activateHandle: akRsa.handle, keyHandle: ek.handle, credentialBlob: toolsId, secret: toolsSeed }), (e: unknown) => {
    assert.ok(isRc("TPM_RC_AUTH_UNAVAILABLE")(e));
    assert.equal((e as TpmRcError).rc.rc, 0x12f);
    return true;
  });
  // a credential for another object fails inside the TPM; the one-shot policy session is flushed
  await assert.rejects(client.run(ActivateCredential, {
    activateHandle: akRsa.handle,
    keyHandle: ek.handle,
    credentialBlob: oursId,
    secret: oursSeed,
    keyAuth: await ekAuth(client, ek.public),
  }), TpmRcError);
  assert.deepEqual(await getHandles(client, 0x03000000), [], "no policy session left loaded");
});

test("certify, certify-creation and sign with a key under an SRK; signatures verify with the AK's PEM", async () => {
  await client.run(FlushContext, { flushHandle: akEcc.handle });
  await client.run(FlushContext, { flushHandle: ek.handle });
  const srkTemplate: TpmtPublic = {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: 0x00030472, // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|decrypt
    authPolicy: Buffer.alloc(0),
    parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
    unique: Buffer.alloc(0),
  };
  const srk = await client.run(CreatePrimary, { primaryHandle: TPM_RH.OWNER, inPublic: srkTemplate });
  const keyTemplate: TpmtPublic = {
    ...srkTemplate,
    objectAttributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.sign,
    parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }, keyBits: 2048, exponent: 0 },
  };
  const key = await client.run(Create, { parentHandle: srk.handle, inPublic: keyTemplate, outsideInfo: Buffer.from("tpmtrust"), creationPCR: [pcrSelection(TPM_ALG.SHA256, [16])] });
  assert.deepEqual(key.creationHash, hashOf(TPM_ALG.SHA256, encodeTpmsCreationData(key.creationData)));
  assert.deepEqual(key.creationData.parentName, srk.name);
  assert.equal(key.creationData.outsideInfo.toString(), "tpmtrust");
  const loaded = await client.run(Load, { parentHandle: srk.handle, inPrivate: key.private, inPublic: key.public });
  assert.deepEqual(loaded.name, objectName(key.public));

  const akPem = await pem(akRsa.public, "ak.pub");
  const nonce = sha256("tpmtrust-certify-nonce");
  const cert = await client.run(Certify, { objectHandle: loaded.handle, signHandle: akRsa.handle, qualifyingData: nonce });
  assert.ok(cert.attested.type === 0x8017);
  assert.deepEqual(cert.attested.extraData, nonce);
  assert.deepEqual(cert.attested.attested.name, loaded.name);
  assert.deepEqual(cert.attested.qualifiedSigner, akRsa.qualifiedName);
  assert.ok(cert.signature.sigAlg === TPM_ALG.RSASSA && verify("sha256", cert.attest, akPem, cert.signature.sig));

  const cc = await client.run(CertifyCreation, { signHandle: akRsa.handle, objectHandle: loaded.handle, qualifyingData: nonce, creationHash: key.creationHash, creationTicket: key.creationTicket });
  assert.ok(cc.attested.type === 0x801a);
  assert.deepEqual(cc.attested.attested.objectName, loaded.name);
  assert.deepEqual(cc.attested.attested.creationHash, key.creationHash);
  assert.ok(cc.signature.sigAlg === TPM_ALG.RSASSA && verify("sha256", cc.attest, akPem, cc.signature.sig));
  await assert.rejects(client.run(CertifyCreation, {
    signHandle: akRsa.handle,
    objectHandle: loaded.handle,
    qualifyingData: nonce,
    creationHash: sha256("other"),
    creationTicket: key.creationTicket,
  }), isRc("TPM_RC_TICKET"));

  const message = Buffer.from("signed inside the TPM");
  const sig = await client.run(Sign, { keyHandle: loaded.handle, digest: sha256(message) });
  assert.ok(sig.sigAlg === TPM_ALG.RSASSA && verify("sha256", message, await pem(key.public, "key.pub"), sig.sig));
  await assert.rejects(client.run(Sign, { keyHandle: akRsa.handle, digest: sha256(message) }), isRc("TPM_RC_TICKET"), "a restricted key signs no outside digest");
  await client.run(FlushContext, { flushHandle: loaded.handle });

  // Import of duplicates made in software, with and without an inner wrap; TPM2_HMAC with the result
  const hmacKey = randomBytes(32);
  const obj = hmacKeyObject(hmacKey);
  const inner = randomBytes(16);
  const aes128cfb = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
  for (const innerKey of [undefined, inner]) {
    const blob = createDuplicate(srk.public, obj.public, obj.sensitive, innerKey ? { innerKey } : {});
    const priv = await client.run(Import, {
      parentHandle: srk.handle,
      objectPublic: obj.public,
      duplicate: decodeTpm2bPrivate(blob.duplicate),
      inSymSeed: decodeTpm2bEncryptedSecret(blob.inSymSeed),
      ...(innerKey ? { encryptionKey: innerKey, symmetricAlg: aes128cfb } : {}),
    });
    const h = await client.run(Load, { parentHandle: srk.handle, inPrivate: priv, inPublic: obj.public });
    const data = Buffer.from("data to MAC");
    assert.deepEqual(await client.run(HMAC, { handle: h.handle, buffer: data }), createHmac("sha256", hmacKey).update(data).digest());
    await client.run(FlushContext, { flushHandle: h.handle });
  }
  await client.run(FlushContext, { flushHandle: srk.handle });
});
