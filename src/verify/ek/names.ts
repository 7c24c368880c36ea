/** X.501 distinguished names: decoding, display, and RFC 5280 §7.1 style comparison. */
import { AsnConvert } from "@peculiar/asn1-schema";
import { Name, type AttributeValue } from "@peculiar/asn1-x509";
import { children, childrenOrUndefined, onlyTlv, oidText, parseError, readTlv, stringText } from "./der.js";
import { OID } from "./oids.js";

export interface NameAttribute {
  type: string;
  value: string;
}

export interface DistinguishedName {
  /** exact DER as it appears in the certificate */
  der: Buffer;
  /** RDNs in encoded order, each a set of attributes */
  rdns: NameAttribute[][];
  /** display form, e.g. `C=DE, O=Infineon Technologies AG, CN=…` (encoded order; `+` joins multi-valued RDNs) */
  text: string;
}

/** TCG attributes of SAN directoryNames (EK Credential Profile §3.2.9, Platform Certificate Profile). */
export const TCG_ATTRIBUTES = {
  [OID.tpmManufacturer]: "tpmManufacturer",
  [OID.tpmModel]: "tpmModel",
  [OID.tpmVersion]: "tpmVersion",
  [OID.platformManufacturer]: "platformManufacturer",
  [OID.platformModel]: "platformModel",
  [OID.platformVersion]: "platformVersion",
} as const;

/** Short names of common attribute types (RFC 4514 §3 and the TCG's). */
export const ATTRIBUTE_NAMES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "1.2.840.113549.1.9.1": "emailAddress",
  "0.9.2342.19200300.100.1.25": "DC",
  ...TCG_ATTRIBUTES,
};

function valueString(v: AttributeValue): string {
  for (const s of [v.utf8String, v.printableString, v.ia5String, v.teletexString, v.bmpString, v.universalString]) {
    if (s !== undefined) return s;
  }
  // not a string type (e.g. NumericString inside ANY): RFC 4514 hex form
  return v.anyValue ? `#${Buffer.from(v.anyValue).toString("hex")}` : "";
}

/**
 * The attributes of a Name of the plain shape (der.ts), or undefined. `exact`: the schema would
 * encode them back to these very bytes (minimal lengths, valid UTF-8, only directory strings).
 */
function plainName(der: Buffer): { rdns: NameAttribute[][]; exact: boolean } | undefined {
  const seq = onlyTlv(der);
  const sets = seq?.tag === 0x30 ? childrenOrUndefined(der, seq) : undefined;
  if (!seq || !sets) return undefined;
  let exact = !seq.berLength;
  const rdns: NameAttribute[][] = [];
  for (const set of sets) {
    const atvs = set.tag === 0x31 ? childrenOrUndefined(der, set) : undefined;
    if (!atvs || atvs.length === 0) return undefined;
    const rdn: NameAttribute[] = [];
    for (const atv of atvs) {
      const parts = atv.tag === 0x30 ? childrenOrUndefined(der, atv) : undefined;
      if (!parts || parts.length !== 2) return undefined;
      const type = oidText(der, parts[0]);
      if (type === undefined) return undefined;
      const v = parts[1];
      let value = stringText(der, v);
      if (value === undefined) {
        // NumericString and VisibleString are no directory strings: RFC 4514 hex form, as valueString
        if (v.tag !== 0x12 && v.tag !== 0x1a) return undefined;
        value = `#${der.subarray(v.start, v.end).toString("hex")}`;
        exact = false;
      } else if (v.tag === 0x0c && Buffer.byteLength(value) !== v.end - v.contentStart) {
        exact = false; // not UTF-8: read byte by byte
      }
      exact &&= !set.berLength && !atv.berLength && !parts[0].berLength && !v.berLength;
      rdn.push({ type, value });
    }
    rdns.push(rdn);
  }
  return { rdns, exact };
}

function schemaRdns(der: Buffer, what: string, offset: number): NameAttribute[][] {
  let parsed: Name;
  try {
    parsed = AsnConvert.parse(der, Name);
  } catch (e) {
    throw parseError(`${what}: not a valid Name: ${(e as Error).message}`, offset, { field: what });
  }
  return parsed.map((rdn) => rdn.map((atv) => ({ type: atv.type, value: valueString(atv.value) })));
}

function nameOf(der: Buffer, rdns: NameAttribute[][]): DistinguishedName {
  const text = rdns.map((rdn) => rdn.map((a) => `${ATTRIBUTE_NAMES[a.type] ?? a.type}=${a.value}`).join("+")).join(", ");
  return { der, rdns, text };
}

/** Decodes a Name from its exact DER. `unsorted` is set when a multi-valued RDN's SET is not in DER order. */
export function decodeName(der: Buffer, what: string, offset = 0): { name: DistinguishedName; unsorted: boolean } {
  const rdns = plainName(der)?.rdns ?? schemaRdns(der, what, offset);
  return { name: nameOf(der, rdns), unsorted: hasUnsortedSet(der) };
}

/** A Name of the plain shape that the schema would encode back to exactly `der`, or undefined. */
export function exactName(der: Buffer): DistinguishedName | undefined {
  const plain = plainName(der);
  return plain?.exact ? nameOf(der, plain.rdns) : undefined;
}

/** X.690 §11.6: the elements of a DER SET OF are sorted by their encodings. */
function hasUnsortedSet(der: Buffer): boolean {
  const seq = readTlv(der, 0);
  for (const set of children(der, seq)) {
    const items = children(der, set).map((t) => der.subarray(t.start, t.end));
    for (let i = 1; i < items.length; i++) if (Buffer.compare(items[i - 1], items[i]) > 0) return true;
  }
  return false;
}

function normalized(name: DistinguishedName): string[] {
  const norm = (s: string) => s.normalize("NFKC").toLowerCase().trim().replace(/\s+/g, " ");
  return name.rdns.map((rdn) =>
    rdn
      .map((a) => `${a.type}=${norm(a.value)}`)
      .sort()
      .join("+"),
  );
}

/**
 * Compares an issuer name with a subject name: "exact" when the DER is identical, "normalized" when
 * they match after RFC 4518-style case folding and space collapsing (attribute order inside an RDN
 * ignored), otherwise false.
 */
export function compareNames(a: DistinguishedName, b: DistinguishedName): "exact" | "normalized" | false {
  if (a.der.equals(b.der)) return "exact";
  const na = normalized(a);
  const nb = normalized(b);
  return na.length === nb.length && na.every((r, i) => r === nb[i]) ? "normalized" : false;
}
