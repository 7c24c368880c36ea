/**
 * Every EK Credential Profile template (L-1, L-2, H-1 … H-7) and the templates and nonces a
 * manufacturer provisions in NV: EKs byte-identical to tpm2_createek (5.4, Debian 12) wherever it
 * has the template, `-t` for NV templates and nonces; a certificate made for the NV-templated EK
 * is found with the EK that `agent identify` reports.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { identify } from "../../src/agent/identify.js";
import { unsupportedByTpm } from "../../src/agent/tpm.js";
import { TPM_ALG, TPM_RH, TPMA_OBJECT } from "../../src/tpm/constants.js";
import {
  createEk,
  CreatePrimary,
  EK_TEMPLATES,
  type EkKind,
  ekTemplate,
  FlushContext,
  NV_DefineSpace,
  nvWriteAll,
  TPMA_NV,
  TpmClient,
} from "../../src/tpm/commands/index.js";
import { encodeTpmtPublic } from "../../src/tpm/structures.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { testEkCertificate } from "../helpers/ek-trust.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { tpm2 } from "../helpers/tpm2tools.js";

let tpm: Swtpm;
let client: TpmClient;
let dir: string;

before(async () => {
  tpm = await startSwtpm();
  client = new TpmClient(new SwtpmTransport({ port: tpm.port }));
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-ek-templates-"));
});
after(async () => {
  await client?.close();
  await tpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const tpm2b = (area: Buffer) => Buffer.concat([Buffer.from([area.length >> 8, area.length & 0xff]), area]);

/** The EK tpm2_createek makes (TPM2B_PUBLIC as it writes it with -f tss). */
async function toolsEk(args: string[], name: string): Promise<Buffer> {
  const pub = join(dir, `${name}.pub`);
  await tpm2(tpm, "tpm2_createek", [...args, "-c", join(dir, `${name}.ctx`), "-u", pub, "-f", "tss"]);
  return readFileSync(pub);
}

async function ours(kind: EkKind) {
  const ek = await createEk(client, kind);
  await client.run(FlushContext, { flushHandle: ek.handle });
  return ek;
}

test("EKs byte-identical to tpm2_createek -G for every template it has: L-1, L-2, H-3, H-4, H-6", async () => {
  for (const [kind, alg] of [
    ["rsa2048", "rsa"],
    ["ecc-p256", "ecc"],
    ["ecc-p384", "ecc384"],
    ["ecc-p521", "ecc521"],
    ["rsa3072", "rsa3072"],
  ] as [EkKind, string][]) {
    const ek = await ours(kind);
    assert.deepEqual(tpm2b(ek.publicArea), await toolsEk(["-G", alg], alg), `${kind} (${EK_TEMPLATES[kind].label}) vs -G ${alg}`);
    assert.equal(ek.templateIndex, undefined);
  }
});

test("the high range templates without a tpm2_createek name (H-1, H-2) follow B.4: PolicyB, userWithAuth, empty unique; H-5 (SM2) and H-7 are refused by a TPM without them", async () => {
  for (const kind of ["rsa2048-high", "ecc-p256-high"] as EkKind[]) {
    const ek = await ours(kind);
    const low = ekTemplate(kind === "rsa2048-high" ? "rsa2048" : "ecc-p256");
    assert.equal(ek.public.objectAttributes, low.objectAttributes | TPMA_OBJECT.userWithAuth, kind);
    assert.equal(ek.public.authPolicy.toString("hex"), "ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0", kind);
    assert.deepEqual(ek.public.parameters, low.parameters, kind);
  }
  const sm2 = ekTemplate("ecc-sm2");
  assert.equal(sm2.nameAlg, TPM_ALG.SM3_256);
  assert.equal(EK_TEMPLATES["ecc-sm2"].certIndex, 0x01c0001a);
  assert.equal(EK_TEMPLATES["ecc-sm2"].templateIndex, 0x01c0001b);
  // libtpms (swtpm 0.7) has neither SM2 nor RSA-4096
  for (const kind of ["ecc-sm2", "rsa4096"] as EkKind[]) await assert.rejects(createEk(client, kind), unsupportedByTpm, kind);
});

/** Defines a platform NV index as manufacturers do for EK material and writes `data` into it. */
async function provision(index: number, data: Buffer): Promise<void> {
  const attributes = TPMA_NV.PPWRITE | TPMA_NV.WRITEDEFINE | TPMA_NV.PPREAD | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA | TPMA_NV.PLATFORMCREATE;
  await client.run(NV_DefineSpace, { publicInfo: { nvIndex: index, nameAlg: TPM_ALG.SHA256, attributes, authPolicy: Buffer.alloc(0), dataSize: data.length }, authHandle: TPM_RH.PLATFORM });
  await nvWriteAll(client, index, data, { authHandle: TPM_RH.PLATFORM });
}

test("a template provisioned in NV (0x01C00004, 0x01C0000C) makes the EK tpm2_createek -t makes", async () => {
  // manufacturers' templates: here L-1/L-2 with userWithAuth; tpm2-tools 5.4 needs the nonce indices present (empty here)
  const rsaT = ekTemplate("rsa2048");
  const eccT = ekTemplate("ecc-p256");
  await provision(0x01c00004, encodeTpmtPublic({ ...rsaT, objectAttributes: rsaT.objectAttributes | TPMA_OBJECT.userWithAuth }));
  await provision(0x01c0000c, encodeTpmtPublic({ ...eccT, objectAttributes: eccT.objectAttributes | TPMA_OBJECT.userWithAuth }));
  await provision(0x01c00003, Buffer.alloc(0));
  await provision(0x01c0000b, Buffer.alloc(0));
  for (const [kind, alg, t] of [
    ["rsa2048", "rsa", 0x01c00004],
    ["ecc-p256", "ecc", 0x01c0000c],
  ] as [EkKind, string, number][]) {
    const ek = await ours(kind);
    assert.deepEqual(tpm2b(ek.publicArea), await toolsEk(["-t", "-G", alg], `${alg}-nv`), `${kind} vs tpm2_createek -t -G ${alg}`);
    assert.equal(ek.templateIndex, t);
    assert.equal(ek.nonceIndex, undefined, "an empty nonce changes nothing");
    assert.ok(ek.public.objectAttributes & TPMA_OBJECT.userWithAuth);
  }
  for (const i of ["0x01c00003", "0x01c0000b"]) await tpm2(tpm, "tpm2_nvundefine", ["-C", "p", i]);
});

test("an EK nonce in NV (0x01C00003, 0x01C0000B) starts `unique`, zero-padded; the NV certificate made for that EK is found with it", async () => {
  // tpm2-tools 5.4 `-t` copies the bytes of the pointer to the nonce, not the nonce (tpm2_createek.c
  // set_ek_template, fixed upstream): the reference here is the profile's rule, applied by hand
  const rsaNonce = Buffer.from("tpmtrust EK nonce, RSA");
  const eccNonce = Buffer.from("ECC nonce");
  await provision(0x01c00003, rsaNonce);
  await provision(0x01c0000b, eccNonce);
  const rsaT = ekTemplate("rsa2048");
  const eccT = ekTemplate("ecc-p256");
  const byHand: [EkKind, TpmtPublic][] = [
    ["rsa2048", { ...rsaT, objectAttributes: rsaT.objectAttributes | TPMA_OBJECT.userWithAuth, unique: Buffer.concat([rsaNonce, Buffer.alloc(256 - rsaNonce.length)]) } as TpmtPublic],
    [
      "ecc-p256",
      { ...eccT, objectAttributes: eccT.objectAttributes | TPMA_OBJECT.userWithAuth, unique: { x: Buffer.concat([eccNonce, Buffer.alloc(32 - eccNonce.length)]), y: Buffer.alloc(32) } } as TpmtPublic,
    ],
  ];
  for (const [kind, template] of byHand) {
    const ek = await ours(kind);
    const direct = await client.run(CreatePrimary, { primaryHandle: TPM_RH.ENDORSEMENT, inPublic: template });
    await client.run(FlushContext, { flushHandle: direct.handle });
    assert.deepEqual(ek.publicArea, direct.publicArea, kind);
    assert.equal(ek.nonceIndex, kind === "rsa2048" ? 0x01c00003 : 0x01c0000b);
  }

  // the manufacturer's certificate names the EK of its NV template and nonce: identify pairs them
  const rsa = await ours("rsa2048");
  const der = await testEkCertificate(rsa.publicArea);
  await provision(0x01c00002, der);
  const { eks, identity } = await identify(client);
  const e = eks.find((x) => x.kind === "rsa2048" && x.source === "template")!;
  assert.equal(e.certificateIndex, 0x01c00002);
  assert.equal(e.templateIndex, 0x01c00004);
  assert.equal(e.nonceIndex, 0x01c00003);
  assert.deepEqual(Buffer.from(e.public, "base64"), tpm2b(rsa.publicArea));
  assert.deepEqual(identity.ekCertificates, [der.toString("base64")]);
  // the profile's default template makes another key, which the certificate does not name
  const plain = await client.run(CreatePrimary, { primaryHandle: TPM_RH.ENDORSEMENT, inPublic: ekTemplate("rsa2048") });
  await client.run(FlushContext, { flushHandle: plain.handle });
  assert.notDeepEqual(plain.publicArea, rsa.publicArea);
});

test("a high range template in NV (H-3 at 0x01C00017) is used without a nonce, and identify lists its EK", async () => {
  const t = ekTemplate("ecc-p384") as Extract<TpmtPublic, { type: typeof TPM_ALG.ECC }>;
  const provisioned = { ...t, unique: { x: Buffer.alloc(48, 0x11), y: Buffer.alloc(48, 0x22) } } as TpmtPublic;
  await provision(0x01c00017, encodeTpmtPublic(provisioned));
  const ek = await ours("ecc-p384");
  assert.equal(ek.templateIndex, 0x01c00017);
  assert.equal(ek.nonceIndex, undefined);
  const direct = await client.run(CreatePrimary, { primaryHandle: TPM_RH.ENDORSEMENT, inPublic: provisioned });
  await client.run(FlushContext, { flushHandle: direct.handle });
  assert.deepEqual(ek.publicArea, direct.publicArea);
  const { eks } = await identify(client);
  const p384 = eks.find((x) => x.kind === "ecc-p384")!;
  assert.equal(p384.template, "H-3");
  assert.equal(p384.templateIndex, 0x01c00017);
});
