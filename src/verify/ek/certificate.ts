/**
 * X.509 certificates as TPMs and their vendors really ship them (RFC 5280 §4.1; TCG EK Credential
 * Profile 2.x §3). Input: DER, PEM or base64, optionally behind the TCG NV header and followed by
 * padding. The structure is walked by exact DER offsets (signatures cover the original bytes, never
 * a re-encoding), and each part is decoded on its own, straight from the DER when it has the plain shape
 * nearly every certificate uses, else with @peculiar/asn1-x509, so one odd field in a vendor
 * certificate neither sinks the whole certificate nor goes unreported.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier, Extensions } from "@peculiar/asn1-x509";
import { cachedPublicKey } from "../../crypto/keys.js";
import { pemBlocks } from "../../encoding.js";
import { TpmTrustError } from "../../errors.js";
import { booleanValue, children, childrenOrUndefined, contents, expectTag, FAST_LIMIT, hasBerLength, oidText, parseError, readTlv, whole, type Tlv } from "./der.js";
import { decodeExtension, POLICY_EXTENSIONS, PROCESSED_EXTENSIONS, type DecodedExtensions } from "./extensions.js";
import { decodeName, type DistinguishedName } from "./names.js";
import { OID } from "./oids.js";
import type { Tolerance, ToleranceCode } from "./tolerances.js";

export interface CertificateExtension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

export interface ParsedCertificate extends DecodedExtensions {
  /** the certificate's exact DER (prefix and padding removed) */
  der: Buffer;
  /** the exact TBSCertificate bytes the signature covers */
  tbs: Buffer;
  version: number;
  /** hex of the serial INTEGER's content octets as encoded */
  serialNumber: string;
  signatureAlgorithm: { oid: string; parameters?: Buffer };
  signature: Buffer;
  issuer: DistinguishedName;
  subject: DistinguishedName;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER */
  spki: Buffer;
  publicKeyAlgorithm: string;
  /** contents of the SubjectPublicKeyInfo BIT STRING (RSAPublicKey DER for RSA, the point for ECC) */
  publicKeyBits: Buffer;
  extensions: CertificateExtension[];
  /** extensions marked critical that tpmtrust does not process (chain validation decides) */
  unprocessedCritical: string[];
  /** leniencies needed to read this certificate */
  tolerances: Tolerance[];
  /** a short human label: the subject, or issuer CN and serial when the subject is empty */
  label: string;
}

const MAX_CERT = 64 * 1024;
const CERT_LABELS = new Set(["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"]);

interface Framed {
  der: Buffer;
  found: { code: ToleranceCode; detail?: string }[];
}

/** TCG PC Client NV certificate header: 0x10 0x01 0x00 followed by a u16 big-endian length. */
function stripNvFraming(buf: Buffer, found: Framed["found"]): Buffer {
  let b = buf;
  if (b.length > 5 && b[0] === 0x10 && b[1] === 0x01 && b[2] === 0x00 && b[5] === 0x30) {
    found.push({ code: "nv-prefix", detail: `header length ${b.readUInt16BE(3)}` });
    b = b.subarray(5);
  }
  if (b.length === 0 || b[0] !== 0x30) throw parseError("not a DER certificate (no SEQUENCE)", buf.length - b.length);
  const outer = readTlv(b, 0);
  if (outer.end < b.length) {
    const rest = b.subarray(outer.end);
    const ff = rest.every((x) => x === 0xff);
    found.push({ code: ff ? "ff-padding" : "trailing-bytes", detail: `${rest.length} bytes` });
  }
  return b.subarray(0, outer.end);
}

/** Splits input into certificate DERs: PEM (any number of blocks), bare base64, or binary DER. */
function frames(input: Uint8Array | string): Framed[] {
  const buf = typeof input === "string" ? Buffer.from(input, "latin1") : Buffer.from(input.buffer, input.byteOffset, input.length);
  if (buf.length === 0) throw parseError("empty input", 0);
  if (buf[0] === 0x30 || buf[0] === 0x10) {
    const found: Framed["found"] = [];
    return [{ der: stripNvFraming(buf, found), found }];
  }
  const text = buf.toString("latin1");
  const blocks = pemBlocks(text);
  if (blocks.length > 0) {
    const certs = blocks.filter((b) => CERT_LABELS.has(b.label));
    if (certs.length === 0) throw parseError(`PEM holds no certificate (found ${blocks.map((b) => b.label).join(", ")})`, 0);
    return certs.map((b) => {
      const found: Framed["found"] = [];
      // TRUSTED CERTIFICATE appends OpenSSL trust settings after the DER: the DER length cuts them off
      return { der: stripNvFraming(b.der, found), found };
    });
  }
  if (/^[A-Za-z0-9+/=\s]+$/.test(text)) {
    const found: Framed["found"] = [];
    return [{ der: stripNvFraming(Buffer.from(text.replace(/\s/g, ""), "base64"), found), found }];
  }
  throw parseError("not a certificate: neither DER, PEM nor base64", 0);
}

/** Loads exactly one certificate from DER/PEM/base64 bytes, NV header and padding tolerated. */
export function loadCertificate(input: Uint8Array | string): ParsedCertificate {
  const all = frames(input);
  if (all.length !== 1) throw new TpmTrustError("ERR_PARSE_CERT", `expected one certificate, found ${all.length}`, { count: all.length });
  return parseFramed(all[0]);
}

/** Loads every certificate of a PEM bundle (or the one certificate of a DER file). */
export function loadCertificates(input: Uint8Array | string): ParsedCertificate[] {
  return frames(input).map(parseFramed);
}

function parseFramed(f: Framed): ParsedCertificate {
  const cert = parseCertificateDer(f.der);
  cert.tolerances.unshift(...f.found.map((q) => ({ code: q.code, certificate: cert.label, ...(q.detail ? { detail: q.detail } : {}) })));
  return cert;
}

function decodeTime(buf: Buffer, t: Tlv, what: string, note: (c: ToleranceCode) => void): Date {
  const s = contents(buf, t).toString("latin1");
  let m: RegExpExecArray | null;
  let year: number;
  let rest: string[];
  let fraction = "";
  if (t.tag === 0x17) {
    // UTCTime YYMMDDHHMM[SS]Z (RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY)
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?Z$/.exec(s);
    if (!m) throw parseError(`${what}: bad UTCTime "${s}"`, t.start, { field: what });
    year = Number(m[1]) + (Number(m[1]) >= 50 ? 1900 : 2000);
    rest = m.slice(2);
    if (m[6] === undefined) note("time-without-seconds");
  } else if (t.tag === 0x18) {
    // GeneralizedTime YYYYMMDDHHMMSS[.f+]Z (§4.1.2.5.2)
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/.exec(s);
    if (!m) throw parseError(`${what}: bad GeneralizedTime "${s}"`, t.start, { field: what });
    year = Number(m[1]);
    rest = m.slice(2, 7);
    if (m[7]) {
      fraction = m[7];
      note("time-fraction");
    }
  } else {
    throw parseError(`${what}: not a time`, t.start, { field: what });
  }
  const [mo, d, h, mi, sec] = rest.map((x) => Number(x ?? 0));
  const ms = fraction ? Math.floor(Number(`0${fraction}`) * 1000) : 0;
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, sec, ms));
  if (mo < 1 || mo > 12 || date.getUTCDate() !== d || h > 23 || mi > 59 || sec > 59 || date.getUTCFullYear() !== year) {
    throw parseError(`${what}: impossible date "${s}"`, t.start, { field: what });
  }
  return date;
}

/** An AlgorithmIdentifier without parameters, with NULL or with an OBJECT IDENTIFIER (a named curve); else undefined. */
function plainAlgorithm(der: Buffer, t: Tlv): { oid: string; parameters?: Buffer } | undefined {
  const parts = childrenOrUndefined(der, t);
  const oid = parts && parts.length >= 1 && parts.length <= 2 ? oidText(der, parts[0]) : undefined;
  if (oid === undefined) return undefined;
  const p = parts![1];
  if (!p) return { oid };
  // the schema reads NULL as no parameters
  if (p.tag === 0x05 && p.end === p.contentStart) return { oid };
  return oidText(der, p) !== undefined ? { oid, parameters: Buffer.from(whole(der, p)) } : undefined;
}

function algorithm(der: Buffer, t: Tlv, what: string): { oid: string; parameters?: Buffer } {
  const plain = plainAlgorithm(der, t);
  if (plain) return plain;
  try {
    const a = AsnConvert.parse(whole(der, t), AlgorithmIdentifier);
    return { oid: a.algorithm, ...(a.parameters ? { parameters: Buffer.from(a.parameters) } : {}) };
  } catch (e) {
    throw parseError(`${what}: bad AlgorithmIdentifier: ${(e as Error).message}`, t.start, { field: what });
  }
}

interface RawExtension {
  extnID: string;
  critical: boolean;
  value: Buffer;
}

/** Extensions of the plain shape { OID, BOOLEAN (00 or FF) OPTIONAL, primitive OCTET STRING }, or undefined. */
function plainExtensions(der: Buffer, seq: Tlv): RawExtension[] | undefined {
  if (seq.end - seq.start >= FAST_LIMIT) return undefined;
  const out: RawExtension[] = [];
  for (const ext of children(der, seq)) {
    const parts = ext.tag === 0x30 ? childrenOrUndefined(der, ext) : undefined;
    if (!parts || parts.length < 2 || parts.length > 3) return undefined;
    const extnID = oidText(der, parts[0]);
    const critical = parts.length === 3 ? booleanValue(der, parts[1]) : false;
    const value = parts[parts.length - 1];
    if (extnID === undefined || critical === undefined || value.tag !== 0x04) return undefined;
    out.push({ extnID, critical, value: Buffer.from(contents(der, value)) });
  }
  return out.length > 0 ? out : undefined;
}

function schemaExtensions(der: Buffer, seq: Tlv): RawExtension[] {
  try {
    return AsnConvert.parse(whole(der, seq), Extensions).map((e) => ({ extnID: e.extnID, critical: e.critical, value: Buffer.from(e.extnValue.buffer) }));
  } catch (e) {
    throw parseError(`bad extensions: ${(e as Error).message}`, seq.start);
  }
}

function sameAlgorithm(a: { oid: string; parameters?: Buffer }, b: { oid: string; parameters?: Buffer }): boolean {
  // absent and NULL parameters are equivalent (RFC 3279 §2.2.1 vs RFC 4055 §5 encoders)
  const p = (x?: Buffer) => (!x || (x.length === 2 && x[0] === 0x05 && x[1] === 0x00) ? "" : x.toString("hex"));
  return a.oid === b.oid && p(a.parameters) === p(b.parameters);
}

/** Parses exactly one DER certificate; any structural fault is ERR_PARSE_CERT with the byte offset. */
export function parseCertificateDer(input: Uint8Array): ParsedCertificate {
  const der = Buffer.from(input.buffer, input.byteOffset, input.length);
  if (der.length > MAX_CERT) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `certificate of ${der.length} bytes exceeds ${MAX_CERT}`, { size: der.length });
  const found: { code: ToleranceCode; detail?: string }[] = [];
  const note = (code: ToleranceCode, detail?: string) => {
    if (!found.some((f) => f.code === code && f.detail === detail)) found.push({ code, ...(detail ? { detail } : {}) });
  };

  const outer = readTlv(der, 0);
  expectTag(outer, 0x30, "Certificate");
  if (outer.end !== der.length) throw parseError("bytes after the certificate", outer.end, { trailing: der.length - outer.end });
  if (hasBerLength(der, outer)) note("ber-length");
  const top = children(der, outer);
  if (top.length !== 3) throw parseError(`Certificate has ${top.length} elements, expected 3`, outer.start);
  const [tbsT, algT, sigT] = top;
  expectTag(tbsT, 0x30, "tbsCertificate");
  expectTag(algT, 0x30, "signatureAlgorithm");
  expectTag(sigT, 0x03, "signatureValue");

  const parts = children(der, tbsT);
  let i = 0;
  let version = 1;
  if (parts[i]?.tag === 0xa0) {
    const v = children(der, parts[i++])[0];
    if (!v || v.tag !== 0x02 || v.end - v.contentStart !== 1 || der[v.contentStart] > 2) throw parseError("bad version", parts[0].start);
    version = der[v.contentStart] + 1;
  }
  const need = (tag: number, what: string): Tlv => {
    const t = parts[i++];
    if (!t) throw parseError(`tbsCertificate ends before ${what}`, tbsT.end, { field: what });
    expectTag(t, tag, what);
    return t;
  };
  const serialT = need(0x02, "serialNumber");
  const tbsAlgT = need(0x30, "signature");
  const issuerT = need(0x30, "issuer");
  const validityT = need(0x30, "validity");
  const subjectT = need(0x30, "subject");
  const spkiT = need(0x30, "subjectPublicKeyInfo");
  let extsT: Tlv | undefined;
  for (; i < parts.length; i++) {
    const t = parts[i];
    if (t.tag === 0x81 || t.tag === 0x82 || t.tag === 0xa1 || t.tag === 0xa2) continue; // issuer/subject unique IDs
    if (t.tag === 0xa3 && !extsT) {
      extsT = t;
      continue;
    }
    throw parseError(`unexpected element 0x${t.tag.toString(16)} in tbsCertificate`, t.start);
  }

  // serial (RFC 5280 §4.1.2.2: positive, at most 20 octets; real TPMs break both rules)
  const serial = contents(der, serialT);
  if (serial.length === 0) throw parseError("empty serialNumber", serialT.start);
  if (serial.length > 1 && ((serial[0] === 0x00 && serial[1] < 0x80) || (serial[0] === 0xff && serial[1] >= 0x80))) note("non-minimal-serial");
  if (serial[0] & 0x80) note("negative-serial");

  const signatureAlgorithm = algorithm(der, algT, "signatureAlgorithm");
  const tbsAlgorithm = algorithm(der, tbsAlgT, "tbsCertificate.signature");
  if (!whole(der, algT).equals(whole(der, tbsAlgT))) {
    if (!sameAlgorithm(signatureAlgorithm, tbsAlgorithm)) {
      throw parseError(`signatureAlgorithm ${signatureAlgorithm.oid} differs from tbsCertificate.signature ${tbsAlgorithm.oid}`, algT.start);
    }
    note("signature-algorithm-encoding");
  }

  const sigBits = contents(der, sigT);
  if (sigBits.length < 2 || sigBits[0] !== 0) throw parseError("signatureValue is not a whole-octet BIT STRING", sigT.start);

  const issuer = decodeName(whole(der, issuerT), "issuer", issuerT.start);
  const subject = decodeName(whole(der, subjectT), "subject", subjectT.start);
  if (issuer.unsorted || subject.unsorted) note("unsorted-rdn-set");

  const times = children(der, validityT);
  if (times.length !== 2) throw parseError("validity must hold notBefore and notAfter", validityT.start);
  const notBefore = decodeTime(der, times[0], "notBefore", note);
  const notAfter = decodeTime(der, times[1], "notAfter", note);

  const spkiParts = children(der, spkiT);
  if (spkiParts.length !== 2 || spkiParts[0].tag !== 0x30 || spkiParts[1].tag !== 0x03) throw parseError("bad SubjectPublicKeyInfo", spkiT.start);
  const keyBits = contents(der, spkiParts[1]);
  if (keyBits.length < 2 || keyBits[0] !== 0) throw parseError("subjectPublicKey is not a whole-octet BIT STRING", spkiParts[1].start);
  const publicKeyAlgorithm = algorithm(der, spkiParts[0], "subjectPublicKeyInfo.algorithm").oid;
  if (publicKeyAlgorithm === OID.rsaesOaep) note("rsa-oaep-spki");

  const decoded: DecodedExtensions = { caIssuers: [], altDirectoryNames: [], tcg: {} };
  const extensions: CertificateExtension[] = [];
  const unprocessedCritical: string[] = [];
  if (extsT) {
    const seq = children(der, extsT);
    if (seq.length !== 1 || seq[0].tag !== 0x30) throw parseError("extensions must be one SEQUENCE", extsT.start);
    for (const e of plainExtensions(der, seq[0]) ?? schemaExtensions(der, seq[0])) {
      if (extensions.some((x) => x.oid === e.extnID)) throw parseError(`extension ${e.extnID} appears twice`, seq[0].start, { extension: e.extnID });
      extensions.push({ oid: e.extnID, critical: e.critical, value: e.value });
      let known = false;
      try {
        known = decodeExtension(e.extnID, e.value, decoded);
      } catch (err) {
        if (e.critical) throw parseError(`critical extension ${e.extnID} is malformed: ${(err as Error).message}`, seq[0].start, { extension: e.extnID });
        note("undecodable-extension", e.extnID);
        continue;
      }
      if (e.critical && !known && !PROCESSED_EXTENSIONS.has(e.extnID)) {
        if (POLICY_EXTENSIONS.has(e.extnID)) note(e.extnID === OID.certificatePolicies ? "critical-certificate-policies" : "critical-policy-constraints", e.extnID);
        else unprocessedCritical.push(e.extnID);
      }
    }
  }

  const subjectAltName = extensions.find((e) => e.oid === OID.subjectAltName);
  if (subject.name.rdns.length === 0 && subjectAltName && !subjectAltName.critical) note("empty-subject-noncritical-san");

  const label = subject.name.text || `(no subject) serial ${serial.toString("hex")} from ${issuer.name.rdns.flat().find((a) => a.type === "2.5.4.3")?.value ?? issuer.name.text}`;
  return {
    ...decoded,
    der,
    tbs: whole(der, tbsT),
    version,
    serialNumber: serial.toString("hex"),
    signatureAlgorithm,
    signature: sigBits.subarray(1),
    issuer: issuer.name,
    subject: subject.name,
    notBefore,
    notAfter,
    spki: whole(der, spkiT),
    publicKeyAlgorithm,
    publicKeyBits: keyBits.subarray(1),
    extensions,
    unprocessedCritical,
    tolerances: found.map((f) => ({ code: f.code, certificate: label, ...(f.detail ? { detail: f.detail } : {}) })),
    label,
  };
}

const keyCache = new WeakMap<ParsedCertificate, KeyObject>();

/**
 * The certificate's public key; an id-RSAES-OAEP key is read from its RSAPublicKey. The key of a TPM
 * public area just read (an EK certificate judged with its EK) is taken as is when the SPKI is its very DER.
 */
export function certificatePublicKey(cert: ParsedCertificate): KeyObject {
  let key = keyCache.get(cert);
  if (key) return key;
  key = cachedPublicKey(cert.spki);
  try {
    key ??=
      cert.publicKeyAlgorithm === OID.rsaesOaep
        ? createPublicKey({ key: cert.publicKeyBits, format: "der", type: "pkcs1" })
        : createPublicKey({ key: cert.spki, format: "der", type: "spki" });
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_CERT", `${cert.label}: unsupported or malformed public key (${cert.publicKeyAlgorithm}): ${(e as Error).message}`, {
      algorithm: cert.publicKeyAlgorithm,
    });
  }
  keyCache.set(cert, key);
  return key;
}
