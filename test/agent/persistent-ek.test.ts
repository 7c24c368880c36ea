import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { identify } from "../../src/agent/identify.js";
import { loadEk } from "../../src/agent/tpm.js";
import { TpmTrustError } from "../../src/errors.js";
import { completeActivation, startActivation } from "../../src/attest/activation.js";
import { addHost } from "../../src/attest/hosts.js";
import { openStore } from "../../src/store/index.js";
import { TPM_ALG, TPM_RH } from "../../src/tpm/constants.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import {
  ActivateCredential,
  createAk,
  createEk,
  CreatePrimary,
  ekAuth,
  ekTemplate,
  EvictControl,
  FlushContext,
  ReadPublic,
  TpmClient,
} from "../../src/tpm/commands/index.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject, decodeTpm2bPublic, encodeTpm2bPublic } from "../../src/tpm/structures.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import { ekHash } from "../../src/verify/ek/index.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";

let tpm: Swtpm;
let client: TpmClient;
let dir: string;
const AZURE_EK = 0x81010001;

before(async () => {
  tpm = await startSwtpm();
  client = new TpmClient(new SwtpmTransport({ port: tpm.port }));
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-persistent-ek-"));
});
after(async () => {
  await client?.close();
  await tpm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("an EK persisted by another stack (Azure IoT SDK: L-1 template with an empty RSA unique) at 0x81010001 is reported next to the template EK, and enrolment works with either", async () => {
  // the Azure IoT SDK's EK: the L-1 template, but `unique` empty instead of 256 zero bytes: another key
  const l1 = ekTemplate("rsa2048") as Extract<TpmtPublic, { type: typeof TPM_ALG.RSA }>;
  const azure = await client.run(CreatePrimary, { primaryHandle: TPM_RH.ENDORSEMENT, inPublic: { ...l1, unique: Buffer.alloc(0) } });
  await client.run(EvictControl, { objectHandle: azure.handle, persistentHandle: AZURE_EK });
  await client.run(FlushContext, { flushHandle: azure.handle });

  const { identity, eks, notes } = await identify(client);
  const rsa = eks.filter((e) => e.kind === "rsa2048");
  assert.equal(rsa.length, 2);
  const template = rsa.find((e) => e.source === "template")!;
  const persisted = rsa.find((e) => e.source === "persistent")!;
  assert.equal(template.template, "L-1");
  assert.equal(template.handle, undefined);
  assert.equal(persisted.handle, AZURE_EK);
  assert.deepEqual(decodeTpm2bPublic(Buffer.from(persisted.public, "base64")), (await client.run(ReadPublic, { objectHandle: AZURE_EK })).public);
  assert.ok(persisted.enrollment && !template.enrollment, "agent register uses the persisted EK");
  assert.ok(notes.some((n) => n.includes("0x81010001") && n.includes("agent activate enrols with it")));
  assert.equal(identity.ekPublics.filter((p) => p.alg === "rsa2048").length, 2);

  // the service registers both (v1, allow-listed) and enrols an AK under each
  const store = await openStore(join(dir, "s.db"));
  try {
    const caller = { actor: "test", now: Date.now() };
    for (const p of identity.ekPublics) await store.trust.addAllowlist(ekHash(decodeTpm2bPublic(Buffer.from(p.public, "base64"))), { at: Date.now() });
    const r = await addHost(store, { name: "azure-device", hardwareClass: "swtpm", policyVersion: "v1", identity }, caller);
    assert.equal(r.ekTrust.eks.filter((e) => e.alg === "rsa2048" && e.registered).length, 2);

    const templateEk = await createEk(client, "rsa2048");
    const persistentEk = { handle: AZURE_EK, ...(await client.run(ReadPublic, { objectHandle: AZURE_EK })) };
    for (const ek of [persistentEk, templateEk]) {
      const ak = await createAk(client, ek);
      try {
        const c = await startActivation(store, { ekPublic: encodeTpm2bPublic(ek.public), akPublic: encodeTpm2bPublic(ak.public) }, { now: Date.now() });
        const secret = await client.run(ActivateCredential, {
          activateHandle: ak.handle,
          keyHandle: ek.handle,
          credentialBlob: decodeTpm2bIdObject(c.credentialBlob),
          secret: decodeTpm2bEncryptedSecret(c.encryptedSecret),
          keyAuth: await ekAuth(client, ek.public),
        });
        const bound = await completeActivation(store, c.activationId, secret, { now: Date.now() });
        assert.equal(bound.host, "azure-device");
      } finally {
        await client.run(FlushContext, { flushHandle: ak.handle });
      }
    }
    await client.run(FlushContext, { flushHandle: templateEk.handle });
  } finally {
    await store.close();
  }
});

test("agent activate --ek: with both present the operator picks the template's EK or the persisted one; persistent without one is ERR_NOT_FOUND", async () => {
  const auto = await loadEk(client, "rsa2048");
  assert.equal(auto.handle, AZURE_EK, "auto: the persisted EK (from the first test)");
  const template = await loadEk(client, "rsa2048", "template");
  try {
    assert.equal(template.persistent, false);
    assert.notDeepEqual(template.publicArea, auto.publicArea);
    assert.deepEqual(template.publicArea, (await client.run(ReadPublic, { objectHandle: template.handle })).publicArea);
  } finally {
    await template.release();
  }
  const persisted = await loadEk(client, "rsa2048", "persistent");
  assert.equal(persisted.handle, AZURE_EK);
  await assert.rejects(loadEk(client, "ecc-p256", "persistent"), (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_NOT_FOUND");
});
