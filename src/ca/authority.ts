/**
 * The key attestation CA's two authorities: an offline-style root and the issuing CA that signs
 * end-entity certificates and the CRL. `tpmtrust ca init` creates both.
 *
 * Key custody: each private key is a PKCS#8 PEM file with mode 0600 in the key directory (default:
 * `ca/` beside the SQLite database, or under $TPMTRUST_STATE_DIR / `.tpmtrust/` for PostgreSQL).
 * The store keeps the certificate and `key_ref` = `file:<absolute path>`, never the key. A key
 * store (the key provider area) can take over by a new key_ref scheme: only `loadAuthority` reads
 * key_ref. Instances sharing one PostgreSQL must see the same files at those paths.
 */
import * as x509 from "@peculiar/x509";
import { createPublicKey } from "node:crypto";
import { dirname, resolve } from "node:path";
import { TpmTrustError } from "../errors.js";
import { isPostgresUrl, type CaAuthority, type Store } from "../store/index.js";
import { CA_OID, POLICY_OF, TRUST_MODELS } from "./oids.js";
import { loadCaKey, storeCaKey } from "./custody.js";
import { createSelfSignedCa, cryptoKeys, DAY_MS, generateCaKey, randomSerial, signCertificate, signerFor, toSecond, type CaKeyAlg, type Signer } from "./signing.js";

const ROOT_KIND = "root";
export const ISSUING_KIND = "issuing";
const ROOT_YEARS = 20;
const ISSUING_YEARS = 10;

export interface InitOptions {
  alg?: CaKeyAlg;
  /** where the key files go (default: see keyDirFor) */
  keyDir?: string;
  /** seal the keys with this key server (src/keys) instead of writing key files */
  keyServer?: string;
  /** the issuing CA's certificatePolicies: the three attestation policies (default) or anyPolicy */
  anyPolicy?: boolean;
  /** subject organisation (default "tpmtrust") */
  organization?: string;
  actor: string;
  now: number;
}

export interface CaView {
  id: string;
  kind: string;
  subject: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  keyRef: string;
  policies: string[];
}

/** The default key directory of a store. */
export function keyDirFor(store: Store): string {
  const base = process.env.TPMTRUST_STATE_DIR ?? (isPostgresUrl(store.location) || store.location === ":memory:" ? ".tpmtrust" : dirname(store.location));
  return resolve(base, "ca");
}

function describe(a: CaAuthority): CaView {
  const c = new x509.X509Certificate(new Uint8Array(a.cert));
  const policies = c.getExtension(x509.CertificatePolicyExtension)?.policies ?? [];
  return { id: a.id, kind: a.kind, subject: c.subject, serial: c.serialNumber, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), keyRef: a.keyRef, policies: [...policies] };
}

/** Creates the root and the issuing CA. ERR_CONFLICT if an issuing CA exists. Audited as ca.init. */
export async function initCa(store: Store, o: InitOptions): Promise<{ root: CaView; issuing: CaView }> {
  if (await store.ca.currentAuthority(ISSUING_KIND)) throw new TpmTrustError("ERR_CONFLICT", "the CA is already initialised (an issuing CA exists)");
  const alg = o.alg ?? "ecdsa-p256";
  const dir = resolve(o.keyDir ?? keyDirFor(store));
  const org = o.organization ?? "tpmtrust";
  const tag = randomSerial().slice(0, 12);
  const notBefore = toSecond(o.now);

  const rootKey = generateCaKey(alg);
  const issuingKey = generateCaKey(alg);
  const rootRef = await storeCaKey(store, rootKey, { label: `root-${tag}`, keyDir: dir, keyServer: o.keyServer });
  const issuingRef = await storeCaKey(store, issuingKey, { label: `issuing-${tag}`, keyDir: dir, keyServer: o.keyServer });

  const rootCert = await createSelfSignedCa(rootKey, {
    subject: [{ O: [org] }, { CN: [`${org} root CA`] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + ROOT_YEARS * 365 * DAY_MS),
    pathLength: 1,
  });
  const rootKeys = await cryptoKeys(rootKey);
  const rootSigner: Signer = { certificate: rootCert, signingKey: rootKeys.keys.privateKey, signingAlgorithm: rootKeys.signingAlgorithm };
  const policies = o.anyPolicy ? [CA_OID.anyPolicy] : TRUST_MODELS.map((m) => POLICY_OF[m]);
  const issuingCert = await signCertificate(
    {
      issuer: rootSigner,
      publicKey: createPublicKey(issuingKey).export({ type: "spki", format: "der" }),
      subject: [{ O: [org] }, { CN: [`${org} key attestation CA`] }],
      notBefore,
      notAfter: new Date(notBefore.getTime() + ISSUING_YEARS * 365 * DAY_MS),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.CertificatePolicyExtension(policies, false),
      ],
    },
    randomSerial(),
  );
  // two inits at once: one stores its pair, the other is ERR_CONFLICT as if it had come second
  return store.transaction(async (tx) => {
    const first = await tx.ca.addFirstAuthority({ kind: ISSUING_KIND, cert: Buffer.from(issuingCert.rawData), keyRef: issuingRef, at: o.now });
    if (!first.created) throw new TpmTrustError("ERR_CONFLICT", "the CA is already initialised (an issuing CA exists)");
    const issuing = first.authority;
    const root = await tx.ca.addAuthority({ kind: ROOT_KIND, cert: Buffer.from(rootCert.rawData), keyRef: rootRef, at: o.now });
    const out = { root: describe(root), issuing: describe(issuing) };
    await tx.audit.append({
      actor: o.actor,
      action: "ca.init",
      subject: issuing.id,
      outcome: "success",
      details: { alg, custody: o.keyServer ? `key server ${o.keyServer}` : `files in ${dir}`, root: { id: root.id, subject: out.root.subject, serial: out.root.serial }, issuing: { id: issuing.id, subject: out.issuing.subject, serial: out.issuing.serial, policies } },
      at: o.now,
    });
    return out;
  });
}

// Authorities never change once stored (a new one is added and the old retired), so their
// signers are cached by id.
const signers = new Map<string, Promise<Signer>>();

/** The current authority of `kind` with its signer; ERR_NOT_FOUND before `tpmtrust ca init`. */
export async function loadAuthority(store: Store, kind: string = ISSUING_KIND): Promise<{ authority: CaAuthority; signer: Signer }> {
  const authority = await store.ca.currentAuthority(kind);
  if (!authority) throw new TpmTrustError("ERR_NOT_FOUND", `no ${kind} CA: run \`tpmtrust ca init\` first`);
  let s = signers.get(authority.id);
  if (!s) {
    s = loadCaKey(store, authority.keyRef, `${kind} CA key`).then((key) => signerFor(authority.cert, key, `${kind} CA key`));
    signers.set(authority.id, s);
    s.catch(() => signers.delete(authority.id));
  }
  return { authority, signer: await s };
}

/** The issuing CA's chain, issuing CA first then the root (DER). */
export async function caChain(store: Store): Promise<Buffer[]> {
  const issuing = await store.ca.currentAuthority(ISSUING_KIND);
  const root = await store.ca.currentAuthority(ROOT_KIND);
  if (!issuing || !root) throw new TpmTrustError("ERR_NOT_FOUND", "no CA: run `tpmtrust ca init` first");
  return [issuing.cert, root.cert];
}
