/**
 * PKCS#10 certificate requests (RFC 2986): strict, bounded parsing and the self-signature. Pure
 * (no clock, disk or network); the signature check is async only because WebCrypto is.
 */
import * as x509 from "@peculiar/x509";
import { createPublicKey, type KeyObject } from "node:crypto";
import { pemBlocks } from "../encoding.js";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import { children, readTlv } from "./ek/der.js";
import { ATTRIBUTE_NAMES, decodeName } from "./ek/names.js";

/** Largest CSR accepted (a KAST statement with two RSA bindings stays far below). */
const MAX_CSR_BYTES = 64 * 1024;
const EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const SAN = "2.5.29.17";

export interface CsrSan {
  type: "dns" | "ip" | "email" | "uri";
  value: string;
}

/** One attribute of a subject RDN. */
export interface SubjectAttribute {
  /** OID */
  type: string;
  /** short name (CN, O, OU, DC …) or the OID */
  name: string;
  value: string;
}

export interface ParsedCsr {
  der: Buffer;
  request: x509.Pkcs10CertificateRequest;
  /** DER of the subject Name, as in the request */
  subjectDer: Buffer;
  /** the subject's RDNs in encoded order, each a set of attributes (decoded from the DER, never from text) */
  subjectRdns: SubjectAttribute[][];
  /** canonical text of subjectRdns (subjectText): what template patterns are matched against */
  subject: string;
  /** every CN value, in order */
  commonNames: string[];
  /** the first CN */
  commonName: string | undefined;
  /** DER SubjectPublicKeyInfo */
  spki: Buffer;
  publicKey: KeyObject;
  /** "rsa-2048", "ecdsa-p256", … */
  keyType: string;
  sans: CsrSan[];
  /** attributes other than extensionRequest: type and DER values */
  attributes: { type: string; values: Buffer[] }[];
  /** OIDs of requested extensions other than subjectAltName (ignored: the template decides) */
  otherExtensions: string[];
}

function csrError(message: string, details?: Record<string, unknown>): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_CSR", message, details);
}

/** RFC 4514 §2.4 escaping, plus "=" and control characters: an attribute value can never read as a separator or another attribute. */
function escapeValue(v: string): string {
  let out = v.replace(/[\\"+,;<>=]/g, (c) => `\\${c}`).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  if (out.endsWith(" ")) out = `${out.slice(0, -1)}\\ `;
  if (/^[ #]/.test(out)) out = `\\${out}`;
  return out;
}

/** Canonical text of a subject: `NAME=value` with escaped values, `+` inside a multi-valued RDN, ", " between RDNs, encoded order. */
export function subjectText(rdns: SubjectAttribute[][]): string {
  return rdns.map((rdn) => rdn.map((a) => `${a.name}=${escapeValue(a.value)}`).join("+")).join(", ");
}

/** The subject Name of a CSR's DER (CertificationRequest → certificationRequestInfo → version, subject; RFC 2986 §4), decoded structurally. */
function subjectOf(der: Buffer): { subjectDer: Buffer; subjectRdns: SubjectAttribute[][] } {
  const info = children(der, readTlv(der, 0))[0];
  const parts = info && info.tag === 0x30 ? children(der, info) : [];
  if (parts.length < 2 || parts[1].tag !== 0x30) throw csrError("the CSR has no subject Name");
  const subjectDer = der.subarray(parts[1].start, parts[1].end);
  const { name } = decodeName(subjectDer, "subject", parts[1].start);
  return { subjectDer, subjectRdns: Array.from(name.rdns, (rdn) => Array.from(rdn, (a) => ({ type: a.type, name: ATTRIBUTE_NAMES[a.type] ?? a.type, value: a.value }))) };
}

const CN = "2.5.4.3";

const CSR_LABELS = new Set(["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"]);

/** DER, or PEM text/bytes ("CERTIFICATE REQUEST"). */
function toDer(input: Uint8Array | string): Buffer {
  const text = typeof input === "string" ? input : input[0] === 0x2d ? Buffer.from(input).toString("latin1") : undefined;
  if (text === undefined) return Buffer.from(input as Uint8Array);
  const trimmed = text.trim();
  const blocks = pemBlocks(trimmed);
  const b = blocks[0];
  if (blocks.length !== 1 || b.start !== 0 || b.end !== trimmed.length || !CSR_LABELS.has(b.label) || !/^[A-Za-z0-9+/=\s]+$/.test(b.body)) {
    throw csrError("not a DER or PEM certificate request");
  }
  return b.der;
}

function keyTypeOf(k: KeyObject): string {
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === "rsa") return `rsa-${d.modulusLength}`;
  if (k.asymmetricKeyType === "ec") {
    const curve = { prime256v1: "p256", secp384r1: "p384", secp521r1: "p521" }[d.namedCurve ?? ""];
    return curve ? `ecdsa-${curve}` : `ec-${d.namedCurve}`;
  }
  return k.asymmetricKeyType ?? "unknown";
}

const SAN_TYPES: Record<string, CsrSan["type"]> = { dns: "dns", ip: "ip", email: "email", url: "uri" };

/** Parses a CSR; ERR_PARSE_CSR for anything malformed, oversized or unsupported (e.g. otherName SANs). */
export function parseCsr(input: Uint8Array | string): ParsedCsr {
  const der = toDer(input);
  if (der.length === 0 || der.length > MAX_CSR_BYTES) throw csrError(`a CSR has 1 to ${MAX_CSR_BYTES} bytes, got ${der.length}`);
  let outer;
  try {
    outer = readTlv(der, 0);
  } catch (e) {
    throw csrError(`not DER: ${(e as Error).message}`, { offset: (e as TpmTrustError).details?.offset ?? 0 });
  }
  if (outer.tag !== 0x30) throw csrError("a CSR is a DER SEQUENCE", { offset: 0 });
  if (outer.end !== der.length) throw csrError(`${der.length - outer.end} trailing bytes after the CSR`, { offset: outer.end });
  // @peculiar/x509 parses parts lazily: every accessor may throw on malformed input
  try {
    const request = new x509.Pkcs10CertificateRequest(new Uint8Array(der));
    const spki = Buffer.from(request.publicKey.rawData);
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
    } catch (e) {
      throw csrError(`the CSR's public key does not load: ${(e as Error).message}`);
    }
    const sans: CsrSan[] = [];
    const otherExtensions: string[] = [];
    const attributes: ParsedCsr["attributes"] = [];
    for (const a of request.attributes) {
      if (a.type !== EXTENSION_REQUEST) attributes.push({ type: a.type, values: a.values.map((v) => Buffer.from(v)) });
    }
    for (const ext of request.extensions) {
      if (ext.type !== SAN) {
        otherExtensions.push(ext.type);
        continue;
      }
      for (const n of new x509.SubjectAlternativeNameExtension(ext.rawData).names.items) {
        const type = SAN_TYPES[n.type];
        if (!type) throw csrError(`subjectAltName of type ${n.type} is not supported`, { type: n.type });
        sans.push({ type, value: n.value });
      }
    }
    let subject: ReturnType<typeof subjectOf>;
    try {
      subject = subjectOf(der);
    } catch (e) {
      throw csrError(`the CSR's subject: ${(e as Error).message}`);
    }
    const { subjectDer, subjectRdns } = subject;
    const commonNames = subjectRdns.flat().filter((a) => a.type === CN).map((a) => a.value);
    return { der, request, subjectDer, subjectRdns, subject: subjectText(subjectRdns), commonNames, commonName: commonNames[0], spki, publicKey, keyType: keyTypeOf(publicKey), sans, attributes, otherExtensions };
  } catch (e) {
    if (isTpmTrustError(e)) throw e;
    throw csrError(`not a PKCS#10 request: ${(e as Error).message}`);
  }
}

/** The CSR's self-signature (proof of possession); ERR_SIGNATURE_INVALID if it does not verify. */
export async function verifyCsrSignature(csr: ParsedCsr): Promise<void> {
  let ok: boolean;
  try {
    ok = await csr.request.verify();
  } catch (e) {
    throw new TpmTrustError("ERR_SIGNATURE_INVALID", `the CSR's signature cannot be checked: ${(e as Error).message}`);
  }
  if (!ok) throw new TpmTrustError("ERR_SIGNATURE_INVALID", "the CSR's self-signature does not verify with its public key");
}
