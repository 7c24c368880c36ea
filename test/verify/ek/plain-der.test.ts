/**
 * Names and extension values of the plain shape are read straight from the DER (der.ts); everything
 * else goes to @peculiar/asn1-x509. Here the two must agree: on the names and extension values of
 * real certificates, and on every one-byte change of them, decodeName and decodeExtension give what
 * the schema gives, and fail where it fails.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { AsnConvert } from "@peculiar/asn1-schema";
import * as asn from "@peculiar/asn1-x509";
import { loadCertificate, type ParsedCertificate } from "../../../src/verify/ek/certificate.js";
import { children, hasBerLength, readTlv } from "../../../src/verify/ek/der.js";
import { decodeExtension, type DecodedExtensions } from "../../../src/verify/ek/extensions.js";
import { decodeName } from "../../../src/verify/ek/names.js";
import { OID } from "../../../src/verify/ek/oids.js";

const ROOTS = "test/fixtures/manufacturer-roots/keylime-tpm_cert_store";
const certs: ParsedCertificate[] = [
  ...["infineon_rsa_ek.der", "infineon_ecc_ek.der"].map((f) => loadCertificate(readFileSync(`test/fixtures/ek-certs/${f}`))),
  ...["IFX_RSA_035.pem", "IFX_ECC_035.pem"].map((f) => loadCertificate(readFileSync(`test/fixtures/manufacturer-roots/infineon-intermediates/${f}`))),
  ...readdirSync(ROOTS)
    .sort()
    .filter((_, i) => i % 8 === 0)
    .map((f) => loadCertificate(readFileSync(`${ROOTS}/${f}`))),
];

/** The input, then each byte in turn with one of four bits flipped, or set to 00, 02 (INTEGER) or FF. */
function* oneByteChanges(b: Buffer): Generator<Buffer> {
  yield b;
  for (let i = 0; i < b.length; i++) {
    for (const x of new Set([b[i] ^ 0x01, b[i] ^ 0x02, b[i] ^ 0x10, b[i] ^ 0x80, 0x00, 0x02, 0xff])) {
      const m = Buffer.from(b);
      m[i] = x;
      yield m;
    }
  }
}

/** The value as plain data (the schema's arrays are subclasses), or "throws". */
function outcome(f: () => unknown): unknown {
  try {
    const v = f();
    return v === undefined ? v : JSON.parse(JSON.stringify(v));
  } catch {
    return "throws";
  }
}

function schemaValue(v: asn.AttributeValue): string {
  for (const s of [v.utf8String, v.printableString, v.ia5String, v.teletexString, v.bmpString, v.universalString]) if (s !== undefined) return s;
  return v.anyValue ? `#${Buffer.from(v.anyValue).toString("hex")}` : "";
}

function schemaRdns(name: asn.Name): { type: string; value: string }[][] {
  return Array.from(name, (rdn) => Array.from(rdn, (a) => ({ type: a.type, value: schemaValue(a.value) })));
}

/** What the schema reads from an extension value, in the fields decodeExtension fills. */
const SCHEMA: Record<string, (v: Buffer) => unknown> = {
  [OID.basicConstraints]: (v) => {
    const bc = AsnConvert.parse(v, asn.BasicConstraints);
    return { ca: bc.cA, ...(bc.pathLenConstraint !== undefined ? { pathLength: bc.pathLenConstraint } : {}) };
  },
  [OID.keyUsage]: (v) => AsnConvert.parse(v, asn.KeyUsage).toJSON(),
  [OID.extKeyUsage]: (v) => [...AsnConvert.parse(v, asn.ExtendedKeyUsage)],
  [OID.subjectKeyIdentifier]: (v) => Buffer.from(AsnConvert.parse(v, asn.SubjectKeyIdentifier).buffer).toString("hex"),
  [OID.authorityKeyIdentifier]: (v) => {
    const id = AsnConvert.parse(v, asn.AuthorityKeyIdentifier).keyIdentifier;
    return id ? Buffer.from(id.buffer).toString("hex") : undefined;
  },
  [OID.authorityInfoAccess]: (v) =>
    AsnConvert.parse(v, asn.AuthorityInfoAccessSyntax).flatMap((ad) => (ad.accessMethod === OID.caIssuers && ad.accessLocation.uniformResourceIdentifier ? [ad.accessLocation.uniformResourceIdentifier] : [])),
  [OID.subjectAltName]: (v) =>
    AsnConvert.parse(v, asn.SubjectAlternativeName).flatMap((gn) => {
      if (!gn.directoryName) return [];
      const der = Buffer.from(AsnConvert.serialize(gn.directoryName));
      return [{ der: der.toString("hex"), rdns: schemaRdns(AsnConvert.parse(der, asn.Name)) }];
    }),
  [OID.subjectDirectoryAttributes]: (v) => {
    let spec: unknown;
    for (const a of AsnConvert.parse(v, asn.SubjectDirectoryAttributes)) {
      if (a.type !== OID.tpmSpecification || !a.values[0]) continue;
      // TPMSpecification ::= SEQUENCE { family UTF8String, level INTEGER, revision INTEGER }
      const der = Buffer.from(a.values[0]);
      const [family, level, revision] = children(der, readTlv(der, 0));
      if (!family || level?.tag !== 0x02 || revision?.tag !== 0x02) throw new Error("not a TPMSpecification");
      const int = (t: typeof level) => der.subarray(t.contentStart, t.end).reduce((n, b) => n * 256 + b, 0);
      spec = { family: der.subarray(family.contentStart, family.end).toString("utf8"), level: int(level), revision: int(revision) };
    }
    return spec;
  },
};

function decoded(oid: string, v: Buffer): unknown {
  const out: DecodedExtensions = { caIssuers: [], altDirectoryNames: [], tcg: {} };
  decodeExtension(oid, v, out);
  switch (oid) {
    case OID.basicConstraints:
      return out.basicConstraints;
    case OID.keyUsage:
      return out.keyUsage;
    case OID.extKeyUsage:
      return out.extendedKeyUsage;
    case OID.subjectKeyIdentifier:
      return out.subjectKeyIdentifier;
    case OID.authorityKeyIdentifier:
      return out.authorityKeyIdentifier;
    case OID.authorityInfoAccess:
      return out.caIssuers;
    case OID.subjectAltName:
      return out.altDirectoryNames.map((n) => ({ der: n.der.toString("hex"), rdns: n.rdns }));
    default:
      return out.tcg.tpmSpecification;
  }
}

test("names: the DER reading and the schema agree on real names and on every one-byte change of them", () => {
  let compared = 0;
  for (const der of certs.flatMap((c) => [c.issuer.der, c.subject.der, ...c.altDirectoryNames.map((n) => n.der)])) {
    for (const m of oneByteChanges(der)) {
      // as in a certificate: one TLV whose every element parses (hasBerLength walks them)
      if (outcome(() => readTlv(m, 0).end === m.length && hasBerLength(m, readTlv(m, 0)) !== undefined) !== true) continue;
      const expected = outcome(() => schemaRdns(AsnConvert.parse(m, asn.Name)));
      assert.deepEqual(outcome(() => decodeName(m, "subject").name.rdns), expected, m.toString("hex"));
      compared++;
    }
  }
  assert.ok(compared > 1000);
});

test("extensions: the DER reading and the schema agree on real values and on every one-byte change of them", () => {
  const seen = new Set<string>();
  for (const e of certs.flatMap((c) => c.extensions)) {
    const schema = SCHEMA[e.oid];
    if (!schema) continue;
    seen.add(e.oid);
    for (const m of oneByteChanges(e.value)) {
      assert.deepEqual(outcome(() => decoded(e.oid, m)), outcome(() => schema(m)), `${e.oid} ${m.toString("hex")}`);
    }
  }
  assert.deepEqual([...seen].sort(), Object.keys(SCHEMA).sort());
});
