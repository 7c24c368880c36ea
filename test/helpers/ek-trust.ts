/**
 * Real EK trust for hosts that tests put straight into the store: a test EK root (stored as an
 * EKROOT) and EK certificates it issues for any EK public key, so a v2 host registered this way
 * passes the same re-evaluation of EK trust as one registered through `hosts add`.
 */
import { webcrypto, type KeyObject } from "node:crypto";
import type { Store } from "../../src/store/index.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { decodeTpmtPublic } from "../../src/tpm/structures.js";
import { makeCa, makeLeaf, type Issued } from "../verify/ek/certgen.js";

let root: Promise<Issued> | undefined;

/** The test EK root CA (one per process). */
export function testEkRoot(): Promise<Issued> {
  root ??= makeCa({ name: "CN=tpmtrust test EK root" });
  return root;
}

/** Stores the test EK root as a trusted EKROOT. */
export async function trustTestEkRoot(store: Store): Promise<void> {
  const r = await testEkRoot();
  await store.trust.addCaCert("root", r.der, "tpmtrust test EK root", Date.now());
}

/** An EK certificate (DER) from the test root for the EK `ek` (a KeyObject, or TPMT_PUBLIC bytes). */
export async function testEkCertificate(ek: KeyObject | Buffer): Promise<Buffer> {
  const key = Buffer.isBuffer(ek) ? publicKeyFromTpmt(decodeTpmtPublic(ek)) : ek;
  const spki = key.export({ type: "spki", format: "der" });
  const publicKey =
    key.asymmetricKeyType === "ec"
      ? await webcrypto.subtle.importKey("spki", spki, { name: "ECDH", namedCurve: "P-256" }, true, [])
      : await webcrypto.subtle.importKey("spki", spki, { name: "RSA-OAEP", hash: "SHA-256" }, true, ["encrypt"]);
  return (await makeLeaf({ issuer: await testEkRoot(), publicKey: publicKey as CryptoKey })).der;
}
