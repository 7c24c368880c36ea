/**
 * The CA exchange certificate (as `certutil -cainfo xchg` shows AD CS's): a short-lived RSA
 * encryption certificate issued by the issuing CA, to which Windows clients encrypt the EK info
 * (szOID_ENROLL_EK_INFO, MS-WCCE 2.2.2.7.13) and their challenge answer. It is kept as a CA
 * authority of kind "xchg" with its key in the same custody as the CA keys, and renewed on use when
 * less than a day of its validity is left (the old one is retired: envelopes to it no longer open).
 */
import * as x509 from "@peculiar/x509";
import { createPublicKey, type KeyObject } from "node:crypto";
import { dirname } from "node:path";
import type { CaAuthority, Store } from "../store/index.js";
import { ISSUING_KIND, keyDirFor, loadAuthority } from "./authority.js";
import { loadCaKey, storeCaKey } from "./custody.js";
import { DAY_MS, generateCaKey, randomSerial, signCertificate, toSecond } from "./signing.js";

const XCHG_KIND = "xchg";
/** szOID_KP_CA_EXCHANGE */
const CA_EXCHANGE_EKU = "1.3.6.1.4.1.311.21.5";
const XCHG_VALIDITY_DAYS = 7;
const RENEW_BEFORE_MS = DAY_MS;

export interface Xchg {
  authority: CaAuthority;
  certificate: x509.X509Certificate;
}

function fresh(a: CaAuthority, now: number): boolean {
  return new x509.X509Certificate(new Uint8Array(a.cert)).notAfter.getTime() - now > RENEW_BEFORE_MS;
}

/** The current exchange certificate, issued (or renewed) now when there is none fresh enough. */
export async function currentXchg(store: Store, o: { actor: string; now: number }): Promise<Xchg> {
  const current = await store.ca.currentAuthority(XCHG_KIND);
  if (current && fresh(current, o.now)) return { authority: current, certificate: new x509.X509Certificate(new Uint8Array(current.cert)) };
  const { authority: issuing, signer } = await loadAuthority(store, ISSUING_KIND);
  const key = generateCaKey("rsa-2048");
  const keyServer = issuing.keyRef.startsWith("keyserver:") ? issuing.keyRef.split(":")[1] : undefined;
  const keyDir = issuing.keyRef.startsWith("file:") ? dirname(issuing.keyRef.slice("file:".length)) : keyDirFor(store);
  const keyRef = await storeCaKey(store, key, { label: `xchg-${randomSerial().slice(0, 12)}`, keyDir, keyServer });
  const notBefore = toSecond(o.now);
  const cert = await signCertificate(
    {
      issuer: signer,
      publicKey: createPublicKey(key).export({ type: "spki", format: "der" }),
      subject: `CN=${signer.certificate.subjectName.getField("CN")[0] ?? "tpmtrust"}-Xchg`,
      notBefore,
      notAfter: new Date(notBefore.getTime() + XCHG_VALIDITY_DAYS * DAY_MS),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([CA_EXCHANGE_EKU], false),
      ],
    },
    randomSerial(),
  );
  // instances racing here: one stores its certificate, the others use it
  const made = await store.transaction(async (tx) => {
    const latest = await tx.ca.currentAuthority(XCHG_KIND);
    if (latest && latest.id !== current?.id) return { authority: latest, created: false };
    if (current) await tx.ca.retireAuthority(current.id, o.now);
    const authority = await tx.ca.addAuthority({ kind: XCHG_KIND, cert: Buffer.from(cert.rawData), keyRef, at: o.now });
    await tx.audit.append({ actor: o.actor, action: "ca.xchg.issue", subject: authority.id, outcome: "success", details: { serial: cert.serialNumber, notAfter: cert.notAfter.toISOString(), ...(current ? { replaces: current.id } : {}) }, at: o.now });
    return { authority, created: true };
  });
  return { authority: made.authority, certificate: new x509.X509Certificate(new Uint8Array(made.authority.cert)) };
}

/** The exchange certificate's private key (to open envelopes addressed to it). */
export function xchgKey(store: Store, x: Xchg): Promise<KeyObject> {
  return loadCaKey(store, x.authority.keyRef, "CA exchange key");
}
