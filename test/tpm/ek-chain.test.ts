import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { identify } from "../../src/agent/identify.js";
import { addHost } from "../../src/attest/hosts.js";
import { openStore } from "../../src/store/index.js";
import { importCaCertificates } from "../../src/trust/trust.js";
import { TPM_ALG, TPM_RH } from "../../src/tpm/constants.js";
import { EK_CHAIN_FIRST, NV_DefineSpace, nvWriteAll, readEkChain, TPMA_NV, TpmClient } from "../../src/tpm/commands/index.js";
import { certificatesFromNvChain } from "../../src/tpm/nvcert.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import { loadCertificate } from "../../src/verify/ek/index.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";

let tpm: Swtpm;
let client: TpmClient;
let dir: string;
let root: Buffer;
let issuer: Buffer;

before(async () => {
  tpm = await startSwtpm({ ekCerts: true });
  client = new TpmClient(new SwtpmTransport({ port: tpm.port }));
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-ekchain-"));
  root = loadCertificate(tpm.ca!.rootPem).der;
  issuer = loadCertificate(tpm.ca!.intermediatePem).der;
});
after(async () => {
  await client?.close();
  await tpm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("chain NV contents: concatenated DER certificates, optional NV header, fill bytes; anything else is ERR_PARSE_CERT", () => {
  assert.deepEqual(certificatesFromNvChain(Buffer.concat([issuer, root, Buffer.alloc(40, 0xff)])), [issuer, root]);
  const header = Buffer.from([0x10, 0x01, 0x00, issuer.length >> 8, issuer.length & 0xff]);
  assert.deepEqual(certificatesFromNvChain(Buffer.concat([header, issuer, Buffer.alloc(3)])), [issuer]);
  assert.deepEqual(certificatesFromNvChain(Buffer.alloc(16, 0xff)), []);
  assert.throws(() => certificatesFromNvChain(Buffer.concat([issuer, Buffer.from("junk")])), { code: "ERR_PARSE_CERT" });
  assert.throws(() => certificatesFromNvChain(Buffer.concat([issuer, Buffer.alloc(2, 0xff), root])), { code: "ERR_PARSE_CERT" });
});

/** A host registered with only the swtpm root trusted: its EK certificate chains only through the issuer. */
async function registerWithRootOnly(name: string, identity: unknown) {
  const store = await openStore(join(dir, `${name}.db`));
  try {
    const caller = { actor: "test", now: Date.now() };
    await importCaCertificates(store, [root], { kind: "root" }, caller);
    return await addHost(store, { name, hardwareClass: "swtpm", policyVersion: "v2", identity }, caller);
  } finally {
    await store.close();
  }
}

test("an EK certificate chain written into swtpm's NV (0x01C00100, 0x01C00101) is read and used as intermediates: a leaf that only chains through it is trusted", async () => {
  // without the chain in NV the issuer is unknown: v2 refuses
  const bare = await identify(client);
  assert.equal(bare.identity.ekIntermediates, undefined);
  await assert.rejects(registerWithRootOnly("bare", bare.identity), { code: "ERR_EK_NOT_TRUSTED" });

  // swtpm's NV indices hold at most 2 KiB: the issuer (with 0xFF fill) in the first chain index, the root in the second
  const attributes = TPMA_NV.PPWRITE | TPMA_NV.PPREAD | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA | TPMA_NV.PLATFORMCREATE;
  for (const [index, data] of [
    [EK_CHAIN_FIRST, Buffer.concat([issuer, Buffer.alloc(64, 0xff)])],
    [EK_CHAIN_FIRST + 1, root],
  ] as const) {
    await client.run(NV_DefineSpace, { publicInfo: { nvIndex: index, nameAlg: TPM_ALG.SHA256, attributes, authPolicy: Buffer.alloc(0), dataSize: data.length }, authHandle: TPM_RH.PLATFORM });
    await nvWriteAll(client, index, data, { authHandle: TPM_RH.PLATFORM });
  }
  assert.deepEqual(await readEkChain(client), [
    { index: EK_CHAIN_FIRST, certificates: [issuer] },
    { index: EK_CHAIN_FIRST + 1, certificates: [root] },
  ]);
  const withChain = await identify(client);
  assert.deepEqual(withChain.identity.ekIntermediates, [issuer, root].map((c) => c.toString("base64")));
  const r = await registerWithRootOnly("chained", withChain.identity);
  assert.equal(r.ekTrust.method, "ek-cert");
  assert.ok(r.ekTrust.eks.some((e) => e.alg === "rsa2048" && e.registered));
});
