/**
 * Decoders for the certificate extensions EK/AK trust needs, one registry entry per extension
 * (RFC 5280 §4.2; TCG EK Credential Profile 2.x §3.2). Values are decoded with @peculiar/asn1-x509.
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
import { children, readTlv } from "./der.js";
import { decodeName, TCG_ATTRIBUTES, type DistinguishedName } from "./names.js";
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
      if (!gn.directoryName) continue;
      const { name } = decodeName(Buffer.from(AsnConvert.serialize(gn.directoryName)), "subjectAltName");
      out.altDirectoryNames.push(name);
      // the attributes may come as one RDN of three attributes or as three RDNs: flatten
      for (const a of name.rdns.flat()) {
        const key = (TCG_ATTRIBUTES as Record<string, keyof TcgFacts>)[a.type];
        if (key) (out.tcg as Record<string, string>)[key] = a.value;
      }
    }
    if (out.tcg.tpmManufacturer) {
      const id = vendorId(out.tcg.tpmManufacturer);
      if (id) out.tcg.tpmVendorId = id;
    }
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
  decode(value, out);
  return true;
}
