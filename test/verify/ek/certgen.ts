/**
 * Certificates for edge cases: well-formed ones from @peculiar/x509's generator, and byte-level
 * oddities of real vendor certificates (re-encoded TBS, re-signed with node:crypto).
 */
import "reflect-metadata";
import { KeyObject, sign, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { AsnConvert } from "@peculiar/asn1-schema";
import * as asn from "@peculiar/asn1-x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type KeyKind = "ec" | "rsa" | "rsa-sha1" | "rsa-pss";

export interface Issued {
  der: Buffer;
  keys: CryptoKeyPair;
  name: string;
}

const ALGS: Record<KeyKind, RsaHashedKeyGenParams | EcKeyGenParams> = {
  ec: { name: "ECDSA", namedCurve: "P-256" },
  rsa: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
  "rsa-sha1": { name: "RSASSA-PKCS1-v1_5", hash: "SHA-1", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
  "rsa-pss": { name: "RSA-PSS", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
};

const keyCache = new Map<string, CryptoKeyPair>();
/** Key pairs, cached per kind and slot so RSA generation does not dominate the tests. */
export async function keyPair(kind: KeyKind = "ec", slot = 0): Promise<CryptoKeyPair> {
  const id = `${kind}/${slot}`;
  let k = keyCache.get(id);
  if (!k) {
    k = (await webcrypto.subtle.generateKey(ALGS[kind], true, ["sign", "verify"])) as CryptoKeyPair;
    keyCache.set(id, k);
  }
  return k;
}

/** WebCrypto needs the PSS salt length spelt out; other keys carry their whole algorithm. */
function signingAlgorithm(signer: CryptoKeyPair): { signingAlgorithm?: Algorithm & { saltLength: number } } {
  return signer.privateKey.algorithm.name === "RSA-PSS" ? { signingAlgorithm: { name: "RSA-PSS", saltLength: 32 } } : {};
}

export const T0 = new Date("2020-01-01T00:00:00Z");
export const T1 = new Date("2040-01-01T00:00:00Z");
export const AT = new Date("2025-06-01T00:00:00Z");

export interface CaOptions {
  name: string;
  issuer?: Issued;
  kind?: KeyKind;
  slot?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** undefined: cA with no path length; null: no basicConstraints at all */
  pathLength?: number | null;
  ca?: boolean;
  keyUsage?: number;
  extensions?: x509.Extension[];
}

export async function makeCa(o: CaOptions): Promise<Issued> {
  const keys = await keyPair(o.kind ?? "ec", o.slot ?? 0);
  const extensions: x509.Extension[] = [];
  if (o.pathLength !== null) extensions.push(new x509.BasicConstraintsExtension(o.ca ?? true, o.pathLength, true));
  extensions.push(new x509.KeyUsagesExtension(o.keyUsage ?? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  if (o.issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(o.issuer.keys.publicKey));
  extensions.push(...(o.extensions ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "01",
    subject: o.name,
    issuer: o.issuer?.name ?? o.name,
    notBefore: o.notBefore ?? T0,
    notAfter: o.notAfter ?? T1,
    publicKey: keys.publicKey,
    signingKey: (o.issuer ?? { keys }).keys.privateKey,
    ...signingAlgorithm((o.issuer ?? { keys }).keys),
    extensions,
  });
  return { der: Buffer.from(cert.rawData), keys, name: o.name };
}

/** subjectAltName with a directoryName of TPM manufacturer/model/version, as `rdns` RDNs (1 or 3). */
export function tcgSan(values: [string, string, string], rdns: 1 | 3, critical = true): x509.Extension {
  const atvs = (["2.23.133.2.1", "2.23.133.2.2", "2.23.133.2.3"] as const).map(
    (type, i) => new asn.AttributeTypeAndValue({ type, value: new asn.AttributeValue({ utf8String: values[i] }) }),
  );
  const name = rdns === 1 ? new asn.Name([new asn.RelativeDistinguishedName(atvs)]) : new asn.Name(atvs.map((a) => new asn.RelativeDistinguishedName([a])));
  const san = new asn.SubjectAlternativeName([new asn.GeneralName({ directoryName: name })]);
  return new x509.Extension("2.5.29.17", critical, AsnConvert.serialize(san));
}

/** subjectDirectoryAttributes with tpmSpecification { family, level, revision }. */
export function tpmSpecExtension(family: string, level: number, revision: number): x509.Extension {
  const spec = tlv(0x30, Buffer.concat([tlv(0x0c, Buffer.from(family, "utf8")), tlv(0x02, Buffer.from([level])), tlv(0x02, Buffer.from([revision]))]));
  const sda = new asn.SubjectDirectoryAttributes([new asn.Attribute({ type: "2.23.133.2.16", values: [Uint8Array.from(spec).buffer] })]);
  return new x509.Extension("2.5.29.9", false, AsnConvert.serialize(sda));
}

export interface LeafOptions {
  issuer: Issued;
  subject?: string;
  kind?: KeyKind;
  slot?: number;
  publicKey?: CryptoKey;
  notBefore?: Date;
  notAfter?: Date;
  /** null: no EKU extension */
  eku?: string[] | null;
  extensions?: x509.Extension[];
  serial?: string;
  ca?: boolean;
}

/** An EK-style leaf: empty subject by default, critical TCG SAN, EKU 2.23.133.8.1. */
export async function makeLeaf(o: LeafOptions): Promise<Issued & { publicKey: CryptoKey }> {
  const publicKey = o.publicKey ?? (await keyPair(o.kind ?? "ec", o.slot ?? 9)).publicKey;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(o.ca ?? false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true),
    tcgSan(["id:49465800", "SLB 9670 TPM2.0", "id:073f"], 3),
    await x509.AuthorityKeyIdentifierExtension.create(o.issuer.keys.publicKey),
    tpmSpecExtension("2.0", 0, 116),
  ];
  if (o.eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension(o.eku ?? ["2.23.133.8.1"]));
  extensions.push(...(o.extensions ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: o.serial ?? "2fcc2d1e",
    subject: o.subject ?? "",
    issuer: o.issuer.name,
    notBefore: o.notBefore ?? T0,
    notAfter: o.notAfter ?? T1,
    publicKey,
    signingKey: o.issuer.keys.privateKey,
    ...signingAlgorithm(o.issuer.keys),
    extensions,
  });
  return { der: Buffer.from(cert.rawData), keys: { publicKey, privateKey: undefined as unknown as CryptoKey }, name: "", publicKey };
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

/**
 * Re-encodes a certificate's TBS after `edit` changed it (as asn1-x509 objects, or as bytes with
 * `editBytes`) and signs it again with `issuerKey` (ECDSA-SHA256 or RSA-SHA256 per key type).
 */
export async function resign(
  der: Buffer,
  issuer: Issued,
  edit: (tbs: asn.TBSCertificate) => void = () => {},
  editBytes: (tbs: Buffer) => Buffer = (b) => b,
): Promise<Buffer> {
  const cert = AsnConvert.parse(der, asn.Certificate);
  edit(cert.tbsCertificate);
  const tbs = editBytes(Buffer.from(AsnConvert.serialize(cert.tbsCertificate)));
  const key = KeyObject.from(issuer.keys.privateKey);
  const sig = sign("sha256", tbs, key);
  const alg = Buffer.from(AsnConvert.serialize(cert.signatureAlgorithm));
  return tlv(0x30, Buffer.concat([tbs, alg, tlv(0x03, Buffer.concat([Buffer.from([0]), sig]))]));
}

/** A Name from [type, value] pairs, one RDN per inner array, attributes in the given order. */
export function rawName(rdns: [string, string][][]): asn.Name {
  return new asn.Name(
    rdns.map((r) => new asn.RelativeDistinguishedName(r.map(([type, v]) => new asn.AttributeTypeAndValue({ type, value: new asn.AttributeValue({ utf8String: v }) })))),
  );
}
