/**
 * Decoders for the certificate extensions EK/AK trust needs, one registry entry per extension
 * (RFC 5280 §4.2; TCG EK Credential Profile 2.x §3.2). Values of the plain shapes certificates carry
 * are read straight from the DER (der.ts); all others are decoded with @peculiar/asn1-x509.
 */
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  KeyUsage,
  type KeyUsageType,
  SubjectAlternativeName,
  SubjectDirectoryAttributes,
  SubjectKeyIdentifier,
} from "@peculiar/asn1-x509";
import { booleanValue, children, childrenOrUndefined, onlyTlv, oidText, readTlv, type Tlv } from "./der.js";
import { decodeName, exactName, TCG_ATTRIBUTES, type DistinguishedName } from "./names.js";
import { OID } from "./oids.js";

export interface TpmSpecification {
  family: string;
  level: number;
  revision: number;
}

/** TPM and platform facts a TCG certificate states about itself. */
export interface TcgFacts {
  /** e.g. `id:49465800` */
  tpmManufacturer?: string;
  /** the 4-character TCG vendor ID inside tpmManufacturer, e.g. `IFX` */
  tpmVendorId?: string;
  tpmModel?: string;
  tpmVersion?: string;
  tpmSpecification?: TpmSpecification;
  platformManufacturer?: string;
  platformModel?: string;
  platformVersion?: string;
}

export interface DecodedExtensions {
  basicConstraints?: { ca: boolean; pathLength?: number };
  keyUsage?: KeyUsageType[];
  extendedKeyUsage?: string[];
  subjectKeyIdentifier?: string;
  authorityKeyIdentifier?: string;
  /** caIssuers URLs of authorityInfoAccess: where a missing issuer certificate can be fetched */
  caIssuers: string[];
  /** directoryName entries of subjectAltName */
  altDirectoryNames: DistinguishedName[];
  tcg: TcgFacts;
}

type Decoder = (value: Buffer, out: DecodedExtensions) => void;
/** Decodes a value of the plain shape into `out` and returns true; false (leaving `out` alone) for any other. */
type PlainDecoder = (value: Buffer, out: DecodedExtensions) => boolean;

/** "id:49465800" -> "IFX" (TCG vendor IDs are 4 ASCII bytes, NUL or space padded). */
function vendorId(manufacturer: string): string | undefined {
  const m = /^id:([0-9a-f]{8})$/i.exec(manufacturer.trim());
  if (!m) return undefined;
  const s = Buffer.from(m[1], "hex").toString("latin1").replace(/[\0 ]+$/, "");
  return /^[\x20-\x7e]+$/.test(s) ? s : undefined;
}

function unsigned(buf: Buffer): number {
  let n = 0;
  for (const b of buf) n = n * 256 + b;
  return n;
}

/** TPMSpecification ::= SEQUENCE { family UTF8String, level INTEGER, revision INTEGER } (EK profile §3.2.15). */
function tpmSpecification(der: Buffer): TpmSpecification {
  const seq = readTlv(der, 0);
  const [family, level, revision] = children(der, seq);
  if (!family || !level || !revision || level.tag !== 0x02 || revision.tag !== 0x02) throw new Error("not a TPMSpecification");
  return {
    family: der.subarray(family.contentStart, family.end).toString("utf8"),
    level: unsigned(der.subarray(level.contentStart, level.end)),
    revision: unsigned(der.subarray(revision.contentStart, revision.end)),
  };
}

function addDirectoryName(name: DistinguishedName, out: DecodedExtensions): void {
  out.altDirectoryNames.push(name);
  // the attributes may come as one RDN of three attributes or as three RDNs: flatten
  for (const a of name.rdns.flat()) {
    const key = (TCG_ATTRIBUTES as Record<string, keyof TcgFacts>)[a.type];
    if (key) (out.tcg as Record<string, string>)[key] = a.value;
  }
}

function vendorOf(out: DecodedExtensions): void {
  if (out.tcg.tpmManufacturer) {
    const id = vendorId(out.tcg.tpmManufacturer);
    if (id) out.tcg.tpmVendorId = id;
  }
}

/** The elements of a SEQUENCE filling `v`, at least one, or undefined. */
function sequenceOf(v: Buffer): Tlv[] | undefined {
  const t = onlyTlv(v);
  const items = t?.tag === 0x30 ? childrenOrUndefined(v, t) : undefined;
  return items && items.length > 0 ? items : undefined;
}

/** A non-negative INTEGER of at most 3 minimal octets, or undefined. */
function smallInteger(v: Buffer, t: Tlv): number | undefined {
  const n = t.end - t.contentStart;
  if (t.tag !== 0x02 || n < 1 || n > 3 || v[t.contentStart] & 0x80 || (n > 1 && v[t.contentStart] === 0 && v[t.contentStart + 1] < 0x80)) return undefined;
  return unsigned(v.subarray(t.contentStart, t.end));
}

const KEY_USAGE_BITS: [number, KeyUsageType][] = [
  // the order KeyUsage.toJSON lists them in; bit n of the BIT STRING is 1 << n
  [6, "crlSign"],
  [3, "dataEncipherment"],
  [8, "decipherOnly"],
  [0, "digitalSignature"],
  [7, "encipherOnly"],
  [4, "keyAgreement"],
  [5, "keyCertSign"],
  [2, "keyEncipherment"],
  [1, "nonRepudiation"],
];

const PLAIN: Record<string, PlainDecoder> = {
  [OID.basicConstraints]: (v, out) => {
    const t = onlyTlv(v);
    const parts = t?.tag === 0x30 ? childrenOrUndefined(v, t) : undefined;
    if (!parts || parts.length > 2) return false;
    let i = 0;
    let ca: boolean | undefined = false;
    let pathLength: number | undefined;
    if (parts[i]?.tag === 0x01) ca = booleanValue(v, parts[i++]);
    if (i < parts.length && (pathLength = smallInteger(v, parts[i++])) === undefined) return false;
    if (ca === undefined || i !== parts.length) return false;
    out.basicConstraints = { ca, ...(pathLength !== undefined ? { pathLength } : {}) };
    return true;
  },
  [OID.keyUsage]: (v, out) => {
    const t = onlyTlv(v);
    const n = t ? t.end - t.contentStart : 0;
    if (!t || t.tag !== 0x03 || n < 2 || n > 3 || v[t.contentStart] > 7) return false;
    const used = 8 * (n - 1) - v[t.contentStart];
    const bit = (k: number) => k < used && (v[t.contentStart + 1 + (k >> 3)] & (0x80 >> (k & 7))) !== 0;
    out.keyUsage = KEY_USAGE_BITS.filter(([k]) => bit(k)).map(([, name]) => name);
    return true;
  },
  [OID.extKeyUsage]: (v, out) => {
    const oids = sequenceOf(v)?.map((t) => oidText(v, t));
    if (!oids || oids.some((o) => o === undefined)) return false;
    out.extendedKeyUsage = oids as string[];
    return true;
  },
  [OID.subjectKeyIdentifier]: (v, out) => {
    const t = onlyTlv(v);
    if (t?.tag !== 0x04) return false;
    out.subjectKeyIdentifier = v.subarray(t.contentStart, t.end).toString("hex");
    return true;
  },
  [OID.authorityKeyIdentifier]: (v, out) => {
    // keyIdentifier alone; authorityCertIssuer and authorityCertSerialNumber are for the schema to check
    const parts = sequenceOf(v);
    if (parts?.length !== 1 || parts[0].tag !== 0x80) return false;
    out.authorityKeyIdentifier = v.subarray(parts[0].contentStart, parts[0].end).toString("hex");
    return true;
  },
  [OID.authorityInfoAccess]: (v, out) => {
    const descriptions = sequenceOf(v);
    if (!descriptions) return false;
    const found: string[] = [];
    for (const ad of descriptions) {
      const parts = ad.tag === 0x30 ? childrenOrUndefined(v, ad) : undefined;
      // accessLocation a uniformResourceIdentifier [6] IA5String
      const method = parts?.length === 2 && parts[1].tag === 0x86 ? oidText(v, parts[0]) : undefined;
      if (method === undefined) return false;
      const uri = v.subarray(parts![1].contentStart, parts![1].end).toString("latin1");
      if (method === OID.caIssuers && uri) found.push(uri);
    }
    out.caIssuers.push(...found);
    return true;
  },
  [OID.subjectAltName]: (v, out) => {
    const names: DistinguishedName[] = [];
    for (const gn of sequenceOf(v) ?? []) {
      const inner = gn.tag === 0xa4 ? childrenOrUndefined(v, gn) : undefined;
      const name = inner?.length === 1 ? exactName(v.subarray(inner[0].start, inner[0].end)) : undefined;
      if (!name) return false;
      names.push(name);
    }
    if (names.length === 0) return false;
    for (const name of names) addDirectoryName(name, out);
    vendorOf(out);
    return true;
  },
  [OID.subjectDirectoryAttributes]: (v, out) => {
    // only TPMSpecification attributes of one well-formed value
    let spec: TpmSpecification | undefined;
    for (const attr of sequenceOf(v) ?? []) {
      const parts = attr.tag === 0x30 ? childrenOrUndefined(v, attr) : undefined;
      const values = parts?.length === 2 && parts[1].tag === 0x31 ? childrenOrUndefined(v, parts[1]) : undefined;
      if (!values || values.length !== 1 || oidText(v, parts![0]) !== OID.tpmSpecification) return false;
      const fields = values[0].tag === 0x30 ? childrenOrUndefined(v, values[0]) : undefined;
      const int = (f: Tlv) => f.tag === 0x02 && f.end > f.contentStart;
      if (fields?.length !== 3 || fields[0].tag !== 0x0c || !int(fields[1]) || !int(fields[2])) return false;
      spec = tpmSpecification(Buffer.from(v.subarray(values[0].start, values[0].end)));
    }
    if (!spec) return false;
    out.tcg.tpmSpecification = spec;
    return true;
  },
};

const DECODERS: Record<string, Decoder> = {
  [OID.basicConstraints]: (v, out) => {
    const bc = AsnConvert.parse(v, BasicConstraints);
    out.basicConstraints = { ca: bc.cA, ...(bc.pathLenConstraint !== undefined ? { pathLength: bc.pathLenConstraint } : {}) };
  },
  [OID.keyUsage]: (v, out) => {
    out.keyUsage = AsnConvert.parse(v, KeyUsage).toJSON();
  },
  [OID.extKeyUsage]: (v, out) => {
    out.extendedKeyUsage = [...AsnConvert.parse(v, ExtendedKeyUsage)];
  },
  [OID.subjectKeyIdentifier]: (v, out) => {
    out.subjectKeyIdentifier = Buffer.from(AsnConvert.parse(v, SubjectKeyIdentifier).buffer).toString("hex");
  },
  [OID.authorityKeyIdentifier]: (v, out) => {
    const id = AsnConvert.parse(v, AuthorityKeyIdentifier).keyIdentifier;
    if (id) out.authorityKeyIdentifier = Buffer.from(id.buffer).toString("hex");
  },
  [OID.authorityInfoAccess]: (v, out) => {
    for (const ad of AsnConvert.parse(v, AuthorityInfoAccessSyntax)) {
      const uri = ad.accessLocation.uniformResourceIdentifier;
      if (ad.accessMethod === OID.caIssuers && uri) out.caIssuers.push(uri);
    }
  },
  [OID.subjectAltName]: (v, out) => {
    for (const gn of AsnConvert.parse(v, SubjectAlternativeName)) {
      if (gn.directoryName) addDirectoryName(decodeName(Buffer.from(AsnConvert.serialize(gn.directoryName)), "subjectAltName").name, out);
    }
    vendorOf(out);
  },
  [OID.subjectDirectoryAttributes]: (v, out) => {
    for (const attr of AsnConvert.parse(v, SubjectDirectoryAttributes)) {
      if (attr.type === OID.tpmSpecification && attr.values[0]) out.tcg.tpmSpecification = tpmSpecification(Buffer.from(attr.values[0]));
    }
  },
};

/** Extensions whose semantics tpmtrust processes (a critical one of these is not "unknown"). */
export const PROCESSED_EXTENSIONS: ReadonlySet<string> = new Set([
  ...Object.keys(DECODERS),
  OID.issuerAltName,
  OID.crlDistributionPoints,
  OID.freshestCrl,
  OID.subjectInfoAccess,
]);

/** Policy extensions: recognised, but tpmtrust does no RFC 5280 §6.1 policy processing. */
export const POLICY_EXTENSIONS: ReadonlySet<string> = new Set([OID.certificatePolicies, OID.policyMappings, OID.policyConstraints, OID.inhibitAnyPolicy]);

/** Decodes one extension into `out`; false when tpmtrust has no decoder for it. Throws on malformed values. */
export function decodeExtension(oid: string, value: Buffer, out: DecodedExtensions): boolean {
  const decode = DECODERS[oid];
  if (!decode) return false;
  if (!PLAIN[oid](value, out)) decode(value, out);
  return true;
}
