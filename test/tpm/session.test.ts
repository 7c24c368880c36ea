import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { srkTemplate } from "../../src/agent/keys.js";
import { makeCredential } from "../../src/crypto/credential.js";
import { startSaltedSession, withEncryptedSession } from "../../src/crypto/session.js";
import { TpmTrustError } from "../../src/errors.js";
import { TPM_ALG, TPM_RH, TPMA_OBJECT } from "../../src/tpm/constants.js";
import {
  ActivateCredential,
  Create,
  createAk,
  createEk,
  CreatePrimary,
  type CreatePrimaryResult,
  ekAuth,
  FlushContext,
  Load,
  TpmClient,
  Unseal,
} from "../../src/tpm/commands/index.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject } from "../../src/tpm/structures.js";
import { RecordingTransport, SwtpmTransport, type Exchange } from "../../src/tpm/transport/index.js";
import type { Transport } from "../../src/tpm/transport/transport.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";

let tpm: Swtpm;

before(async () => {
  tpm = await startSwtpm();
});
after(async () => {
  await tpm?.stop();
});

/** Flips one byte of the response parameter area of the next response to `code` once armed. */
class FlippingTransport implements Transport {
  armed: number | undefined;
  private lastCode = 0;
  constructor(private readonly inner: Transport) {}
  async send(command: Buffer): Promise<Buffer> {
    this.lastCode = command.readUInt32BE(6);
    const response = Buffer.from(await this.inner.send(command));
    if (this.armed === this.lastCode && response.readUInt32BE(6) === 0) {
      this.armed = undefined;
      response[response.length - 40] ^= 0x01; // inside the parameters (the auth area is 2+32+1+2+32 bytes)
    }
    return response;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const sealedTemplate = (): TpmtPublic => ({
  type: TPM_ALG.KEYEDHASH,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.userWithAuth,
  authPolicy: Buffer.alloc(0),
  parameters: { scheme: { scheme: TPM_ALG.NULL } },
  unique: Buffer.alloc(0),
});

const contains = (exchanges: Exchange[], secret: Buffer) => exchanges.some((e) => e.command.includes(secret) || e.response.includes(secret));

/** Seals `secret` under a fresh SRK with TPM2_Create, loads and unseals it; returns what came out. */
async function sealRoundTrip(client: TpmClient, srk: CreatePrimaryResult, secret: Buffer): Promise<Buffer> {
  const sealed = await client.run(Create, { parentHandle: srk.handle, inPublic: sealedTemplate(), inSensitive: { data: secret } });
  const { handle } = await client.run(Load, { parentHandle: srk.handle, inPrivate: sealed.private, inPublic: sealed.public });
  try {
    return await client.run(Unseal, { itemHandle: handle });
  } finally {
    await client.run(FlushContext, { flushHandle: handle });
  }
}

for (const kind of ["rsa2048", "ecc-p256"] as const) {
  test(`salted session to the ${kind} EK: ActivateCredential and Create/Unseal secrets never cross the bus in the clear`, async () => {
    const rec = new RecordingTransport(new SwtpmTransport({ port: tpm.port }));
    const client = new TpmClient(rec);
    const ek = await createEk(client, kind);
    const sealedSecret = Buffer.from(`sealed-secret-${kind}-0123456789abcdef`);
    const credential = createHash("sha256").update(`credential-${kind}`).digest();
    /** ActivateCredential of a fresh credential to a new AK, then a seal round trip under a new SRK (swtpm holds 3 objects). */
    const both = async () => {
      const ak = await createAk(client, ek);
      try {
        const blob = makeCredential(ek.public, ak.name, credential);
        const [id, seed] = [decodeTpm2bIdObject(blob.credentialBlob), decodeTpm2bEncryptedSecret(blob.secret)];
        const keyAuth = await ekAuth(client, ek.public);
        assert.deepEqual(await client.run(ActivateCredential, { activateHandle: ak.handle, keyHandle: ek.handle, credentialBlob: id, secret: seed, keyAuth }), credential);
      } finally {
        await client.run(FlushContext, { flushHandle: ak.handle });
      }
      const srk = await client.run(CreatePrimary, { primaryHandle: TPM_RH.OWNER, inPublic: srkTemplate() });
      try {
        assert.deepEqual(await sealRoundTrip(client, srk, sealedSecret), sealedSecret);
      } finally {
        await client.run(FlushContext, { flushHandle: srk.handle });
      }
    };
    try {
      await withEncryptedSession(client, ek, both);
      assert.ok(!contains(rec.exchanges, sealedSecret), "the sealed data crossed the bus in the clear");
      assert.ok(!contains(rec.exchanges, credential), "the activated credential crossed the bus in the clear");
      // the same without the session: both secrets are on the bus (so the check above can fail)
      await both();
      assert.ok(contains(rec.exchanges, sealedSecret) && contains(rec.exchanges, credential));
    } finally {
      await client.run(FlushContext, { flushHandle: ek.handle });
      await client.close();
    }
  });
}

test("a flipped byte in a protected Unseal or Create response is ERR_TPM_SESSION_INTEGRITY; a salt encrypted to another key is refused by the TPM", async () => {
  const flip = new FlippingTransport(new SwtpmTransport({ port: tpm.port }));
  const client = new TpmClient(flip);
  const ek = await createEk(client, "rsa2048");
  const srk = await client.run(CreatePrimary, { primaryHandle: TPM_RH.OWNER, inPublic: srkTemplate() });
  try {
    const secret = Buffer.from("integrity-checked-secret");
    const integrity = (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_TPM_SESSION_INTEGRITY";
    const sealed = await withEncryptedSession(client, srk, () => client.run(Create, { parentHandle: srk.handle, inPublic: sealedTemplate(), inSensitive: { data: secret } }));
    const { handle } = await client.run(Load, { parentHandle: srk.handle, inPrivate: sealed.private, inPublic: sealed.public });
    try {
      flip.armed = 0x15e; // TPM2_Unseal
      await assert.rejects(withEncryptedSession(client, srk, () => client.run(Unseal, { itemHandle: handle })), integrity);
      assert.equal(flip.armed, undefined);
      assert.deepEqual(await withEncryptedSession(client, srk, () => client.run(Unseal, { itemHandle: handle })), secret);
    } finally {
      await client.run(FlushContext, { flushHandle: handle });
    }
    flip.armed = 0x153; // TPM2_Create
    await assert.rejects(withEncryptedSession(client, srk, () => client.run(Create, { parentHandle: srk.handle, inPublic: sealedTemplate(), inSensitive: { data: secret } })), integrity);
    // a session to the wrong key: the TPM cannot recover the salt, and says so
    const wrong = { handle: srk.handle, public: ek.public };
    await assert.rejects(startSaltedSession(client, wrong));
  } finally {
    await client.run(FlushContext, { flushHandle: srk.handle });
    await client.run(FlushContext, { flushHandle: ek.handle });
    await client.close();
  }
});
