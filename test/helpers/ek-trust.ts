/**
 * Real EK trust for hosts that tests put straight into the store: a test EK root (stored as an
 * EKROOT) and EK certificates it issues for any EK public key, so a v2 host registered this way
 * passes the same re-evaluation of EK trust as one registered through `hosts add`.
 */
import { KeyObject, sign, webcrypto } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import * as asn from "@peculiar/asn1-x509";
import type { Store } from "../../src/store/index.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { decodeTpmtPublic } from "../../src/tpm/structures.js";
import { makeCa, makeLeaf, tlv, type Issued } from "../verify/ek/certgen.js";

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

let template: Promise<{ tbs: Buffer; alg: Buffer; spki: Buffer; key: KeyObject }> | undefined;

/**
 * EK certificates for many ECC P-256 EKs (TPMT_PUBLIC bytes) at the cost of one signature each: the
 * TBS of one testEkCertificate with the subject public key swapped (a P-256 SubjectPublicKeyInfo
 * has one length), signed by the test root. The same certificates testEkCertificate gives.
 */
export async function testEkCertificates(eks: Buffer[]): Promise<Buffer[]> {
  template ??= (async () => {
    const issuer = await testEkRoot();
    const ek = (await webcrypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"])) as CryptoKeyPair;
    const cert = AsnConvert.parse(await testEkCertificate(KeyObject.from(ek.publicKey)), asn.Certificate);
    const spki = Buffer.from(AsnConvert.serialize(cert.tbsCertificate.subjectPublicKeyInfo));
    return { tbs: Buffer.from(AsnConvert.serialize(cert.tbsCertificate)), alg: Buffer.from(AsnConvert.serialize(cert.signatureAlgorithm)), spki, key: KeyObject.from(issuer.keys.privateKey) };
  })();
  const t = await template;
  const at = t.tbs.indexOf(t.spki);
  return eks.map((ek) => {
    const spki = publicKeyFromTpmt(decodeTpmtPublic(ek)).export({ type: "spki", format: "der" });
    if (spki.length !== t.spki.length) throw new Error("testEkCertificates: ECC P-256 EKs only");
    const tbs = Buffer.from(t.tbs);
    spki.copy(tbs, at);
    return tlv(0x30, Buffer.concat([tbs, t.alg, tlv(0x03, Buffer.concat([Buffer.from([0]), sign("sha256", tbs, t.key)]))]));
  });
}
