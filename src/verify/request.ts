/**
 * Certificate requests as Windows clients send them: a PKCS#10 alone, or a CMC Full PKI Request
 * wrapping one (MS-WCCE 2.2.2.6), PEM (any label: certreq writes "NEW REQUEST" / "CERTIFICATE
 * REQUEST") or DER; and the Microsoft request attributes an operator looks at. Pure.
 */
import { pemBlocks } from "../encoding.js";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import { isContentInfo, parseCmcRequest, type CmcRequest } from "./cmc.js";
import { parseCsr, type ParsedCsr } from "./csr.js";
import { readTlv, children, contents } from "./ek/der.js";

/** Microsoft request attribute and extension OIDs (wincrypt.h; MS-WCCE 2.2.2.7). */
const MS_REQUEST_OID = {
  /** szOID_ENROLLMENT_NAME_VALUE_PAIR: name-value pairs, e.g. CertificateTemplate:NAME */
  nameValuePair: "1.3.6.1.4.1.311.13.2.1",
  /** szOID_ENROLLMENT_CSP_PROVIDER */
  cspProvider: "1.3.6.1.4.1.311.13.2.2",
  /** szOID_OS_VERSION */
  osVersion: "1.3.6.1.4.1.311.13.2.3",
  /** szOID_REQUEST_CLIENT_INFO */
  clientInfo: "1.3.6.1.4.1.311.21.20",
  /** szOID_ENROLL_KSP_NAME */
  kspName: "1.3.6.1.4.1.311.21.25",
  /** szOID_ENROLL_CERTTYPE_EXTENSION (template name, BMPString) */
  certTypeExtension: "1.3.6.1.4.1.311.20.2",
  /** szOID_CERTIFICATE_TEMPLATE (template OID and version) */
  certificateTemplate: "1.3.6.1.4.1.311.21.7",
} as const;

export interface WindowsRequest {
  format: "pkcs10" | "cmc";
  csr: ParsedCsr;
  cmc?: CmcRequest;
}

/** PEM of any label, or DER. */
function requestDer(input: Uint8Array | string): Buffer {
  const text = typeof input === "string" ? input : input[0] === 0x2d ? Buffer.from(input).toString("latin1") : undefined;
  if (text === undefined) return Buffer.from(input as Uint8Array);
  const t = text.trim();
  const [block, ...more] = pemBlocks(t);
  if (!block || more.length > 0 || block.start !== 0 || block.end !== t.length || !/^[A-Za-z0-9+/=\s]+$/.test(block.body)) throw new TpmTrustError("ERR_PARSE_CSR", "not a DER or PEM request");
  return block.der;
}

/** Reads a PKCS#10 or a CMC Full PKI Request (the PKCS#10 inside is parsed the same way). */
export function readRequest(input: Uint8Array | string): WindowsRequest {
  const der = requestDer(input);
  if (!isContentInfo(der)) return { format: "pkcs10", csr: parseCsr(der) };
  const cmc = parseCmcRequest(der);
  return { format: "cmc", csr: parseCsr(cmc.csr), cmc };
}

/** A DER string value (BMPString, UTF8String, IA5String, PrintableString) as text. */
function derString(der: Buffer): string {
  const t = readTlv(der, 0);
  const v = contents(der, t);
  if (t.tag === 0x1e) return Buffer.from(v).swap16().toString("utf16le");
  if (t.tag === 0x0c || t.tag === 0x16 || t.tag === 0x13) return v.toString(t.tag === 0x0c ? "utf8" : "latin1");
  throw new TpmTrustError("ERR_PARSE_CSR", `expected a string, found DER tag 0x${t.tag.toString(16)}`);
}

/** EnrollmentNameValuePairs ::= SEQUENCE OF SEQUENCE { name BMPString, value BMPString } */
function nameValuePairs(der: Buffer): { name: string; value: string }[] {
  const outer = readTlv(der, 0);
  return children(der, outer).map((pair) => {
    const [n, v] = children(der, pair);
    return { name: derString(der.subarray(n.start, n.end)), value: derString(der.subarray(v.start, v.end)) };
  });
}

export interface RequestFacts {
  template: { name?: string; oid?: string; majorVersion?: number; minorVersion?: number } | null;
  osVersion: string | null;
  csp: string | null;
  ksp: string | null;
  client: { machine?: string; user?: string; process?: string } | null;
  nameValuePairs: { name: string; value: string }[];
}

/** The Microsoft attributes of a request; a malformed one is ERR_PARSE_CSR naming it. */
export function requestFacts(req: WindowsRequest): RequestFacts {
  const attrs = [...req.csr.attributes, ...(req.cmc?.controls ?? [])];
  const first = (oid: string) => attrs.find((a) => a.type === oid)?.values[0];
  const guard = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new TpmTrustError("ERR_PARSE_CSR", `${what} is malformed: ${isTpmTrustError(e) || e instanceof Error ? e.message : String(e)}`);
    }
  };
  const pairs = attrs.filter((a) => a.type === MS_REQUEST_OID.nameValuePair).flatMap((a) => a.values.flatMap((v) => guard("the name-value pairs attribute", () => nameValuePairs(v))));
  let template: RequestFacts["template"] = null;
  for (const ext of req.csr.request.extensions) {
    const raw = Buffer.from(ext.value);
    if (ext.type === MS_REQUEST_OID.certTypeExtension) template = { ...(template ?? {}), name: guard("the template name extension", () => derString(raw)) };
    if (ext.type === MS_REQUEST_OID.certificateTemplate) {
      template = {
        ...(template ?? {}),
        ...guard("the certificate template extension", () => {
          const parts = children(raw, readTlv(raw, 0));
          const oidDer = raw.subarray(parts[0].start, parts[0].end);
          const int = (i: number) => (parts[i] ? contents(raw, parts[i]).reduce((a, b) => a * 256 + b, 0) : undefined);
          return { oid: oidText(oidDer), majorVersion: int(1), minorVersion: int(2) };
        }),
      };
    }
  }
  const named = pairs.find((p) => p.name.toLowerCase() === "certificatetemplate");
  if (named && !template?.name) template = { ...(template ?? {}), name: named.value };
  const os = first(MS_REQUEST_OID.osVersion);
  const csp = first(MS_REQUEST_OID.cspProvider);
  const ksp = first(MS_REQUEST_OID.kspName);
  const client = first(MS_REQUEST_OID.clientInfo);
  return {
    template,
    osVersion: os ? guard("the OS version attribute", () => derString(os)) : null,
    csp: csp
      ? guard("the CSP attribute", () => {
          const parts = children(csp, readTlv(csp, 0));
          const s = parts.find((p) => p.tag === 0x1e);
          return s ? derString(csp.subarray(s.start, s.end)) : "";
        })
      : null,
    ksp: ksp ? guard("the KSP name attribute", () => derString(ksp)) : null,
    client: client
      ? guard("the client information attribute", () => {
          const s = children(client, readTlv(client, 0)).filter((p) => p.tag !== 0x02).map((p) => derString(client.subarray(p.start, p.end)));
          return { machine: s[0], user: s[1], process: s[2] };
        })
      : null,
    nameValuePairs: pairs,
  };
}

/** Dotted text of a DER OBJECT IDENTIFIER. */
function oidText(der: Buffer): string {
  const t = readTlv(der, 0);
  if (t.tag !== 0x06) throw new TpmTrustError("ERR_PARSE_CSR", "expected an OBJECT IDENTIFIER");
  const v = contents(der, t);
  const out: number[] = [];
  let n = 0;
  for (const b of v) {
    n = n * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (out.length === 0) out.push(n < 80 ? Math.floor(n / 40) : 2, n < 80 ? n % 40 : n - 80);
      else out.push(n);
      n = 0;
    }
  }
  return out.join(".");
}
