/**
 * Every parser of untrusted input, in one table: what it reads (bytes, text or parsed JSON), how to
 * call it, and valid seeds that mutations start from. The CI suite (parsers.test.ts) and the long
 * fuzz run (test/fuzz/long.ts) share it. The contract: a parser returns, or throws a TpmTrustError
 * with a stable ERR_… code; anything else (TypeError, RangeError, a hang) is a bug.
 */
import "reflect-metadata";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "@peculiar/x509";
import fc from "fast-check";
import { decodeHostIdentity, decodePublic } from "../../src/attest/identity.js";
import { decodeBase64 } from "../../src/encoding.js";
import { decodeCredentialFile, encodeCredentialFile, makeCredential } from "../../src/crypto/credential.js";
import { isTpmTrustError } from "../../src/errors.js";
import { decodeEnvelope, encodeEnvelope } from "../../src/keys/envelope.js";
import { learnBaseline, parseBaseline, parsePcrList } from "../../src/policy/baseline.js";
import { codeIntegrityPolicy, parseCodeIntegrityPolicy } from "../../src/policy/code-integrity.js";
import { parseSecureBootPolicy, secureBootPolicy } from "../../src/policy/secure-boot.js";
import { learnSoftware, parseSoftwarePolicy } from "../../src/policy/software.js";
import { parseListen } from "../../src/server/serve.js";
import { certificateFromNv } from "../../src/tpm/nvcert.js";
import { decodeRc } from "../../src/tpm/rc.js";
import * as S from "../../src/tpm/structures.js";
import { decodeRecording } from "../../src/tpm/transport/record.js";
import { parseTpmSpec } from "../../src/tpm/transport/open.js";
import { decodeDevicePath } from "../../src/verify/eventlog/devicepath.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { loadCertificate, loadCertificates } from "../../src/verify/ek/certificate.js";
import { decodeName } from "../../src/verify/ek/names.js";
import { parseAttestInput, parseKeyInput, parsePcrsInput } from "../../src/verify/inputs.js";
import { decodeTemplate } from "../../src/ca/templates.js";
import { parseAuthenticationKey } from "../../src/provisioning/authentication-key.js";
import { parseSasToken } from "../../src/provisioning/sas.js";
import { decodePublicArea } from "../../src/provisioning/tpm-keys.js";
import { parseCsr } from "../../src/verify/csr.js";
import { decodeAttObj } from "../../src/verify/device-attest.js";
import { parseKast } from "../../src/verify/kast.js";

export const FIXTURES = join(import.meta.dirname, "..", "fixtures");
const fixture = (...p: string[]) => readFileSync(join(FIXTURES, ...p));

export type Input = { kind: "bytes"; value: Buffer } | { kind: "text"; value: string } | { kind: "json"; value: unknown };

export interface ParserCase {
  name: string;
  kind: Input["kind"];
  parse: (input: never) => unknown;
  /** valid inputs: each must parse; mutations start from them */
  seeds: () => unknown[];
}

const quote = () => fixture("quotes", "swtpm-pcr16-quote.bin");
const rsaEkCert = () => fixture("ek-certs", "infineon_rsa_ek.der");
const rsaEkPublic = () => fixture("ek-certs", "infineon_rsa_ek.expected_tpm2b_public.bin");
const logs = () => ["rhel8-gce-uefi.bin", "laptop-startup-locality3.bin", "four-banks-incl-sha512.bin"].map((f) => fixture("eventlogs", f));
const certSubjectDer = () => new X509Certificate(rsaEkCert()).subjectName.toArrayBuffer();

/** A PKCS#10 request made by openssl (P-256 key, a SAN), DER. */
function opensslCsr(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-csr-"));
  try {
    const key = join(dir, "k.pem");
    execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], { stdio: "ignore" });
    return execFileSync("openssl", ["req", "-new", "-key", key, "-subj", "/CN=host-1.example", "-addext", "subjectAltName=DNS:host-1.example", "-outform", "DER"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The decode* functions of every TPM structure (whole buffer, trailing bytes rejected). */
const structureCases: ParserCase[] = Object.entries(S)
  .filter(([k, f]) => /^decode[A-Z]/.test(k) && typeof f === "function")
  .map(([k, f]) => ({
    name: `tpm ${k}`,
    kind: "bytes",
    parse: f as (b: Buffer) => unknown,
    seeds: () =>
      k === "decodeTpmsAttest"
        ? [quote()]
        : k === "decodeTpm2bPublic"
          ? [rsaEkPublic()]
          : k === "decodeTpmtPublic"
            ? [rsaEkPublic().subarray(2)]
            : k === "decodeTpmtSignature"
              ? [fixture("quotes", "swtpm-pcr16-sig.bin")]
              : [],
  }));

export const PARSERS: ParserCase[] = [
  ...structureCases,
  { name: "tpm response code", kind: "json", parse: (n: unknown) => decodeRc(typeof n === "number" ? n >>> 0 : 0x101), seeds: () => [0x101, 0x9a2, 0x1d5, 0x922] },
  { name: "EK certificate from NV", kind: "bytes", parse: certificateFromNv, seeds: () => [rsaEkCert(), Buffer.concat([Buffer.from([0x10, 0x01, 0x00, rsaEkCert().length >> 8, rsaEkCert().length & 0xff]), rsaEkCert(), Buffer.alloc(64, 0xff)])] },
  { name: "event log", kind: "bytes", parse: parseEventLog, seeds: logs },
  { name: "UEFI device path", kind: "bytes", parse: decodeDevicePath, seeds: () => [Buffer.from("0101060000027fff0400", "hex"), Buffer.from("02010c00d041030a000000007fff0400", "hex")] },
  { name: "X.509 certificate (DER/PEM/base64, NV header)", kind: "bytes", parse: loadCertificate, seeds: () => [rsaEkCert(), fixture("ek-certs", "infineon_ecc_ek.der")] },
  { name: "certificate bundle", kind: "bytes", parse: loadCertificates, seeds: () => [fixture("manufacturer-roots", "infineon-intermediates", "IFX_RSA_035.pem")] },
  { name: "X.501 name", kind: "bytes", parse: (b: Buffer) => decodeName(b, "name"), seeds: () => [Buffer.from(certSubjectDer())] },
  { name: "verify --ak/--key input", kind: "bytes", parse: (b: Buffer) => parseKeyInput(b), seeds: () => [rsaEkPublic(), rsaEkCert(), fixture("quotes", "swtpm-pcr16-ak.pem")] },
  { name: "verify --attest input", kind: "bytes", parse: parseAttestInput, seeds: () => [quote()] },
  { name: "verify --pcrs input", kind: "bytes", parse: (b: Buffer) => parsePcrsInput(b), seeds: () => [fixture("quotes", "swtpm-pcr16-pcr.bin"), Buffer.from('{"sha256":{"16":"' + "00".repeat(32) + '"}}'), Buffer.from("sha256:\n  16: 0x" + "AB".repeat(32) + "\n")] },
  {
    name: "tpm2-tools credential file",
    kind: "bytes",
    parse: decodeCredentialFile,
    seeds: () => [encodeCredentialFile(makeCredential(S.decodeTpm2bPublic(rsaEkPublic()), Buffer.concat([Buffer.from([0, 0x0b]), Buffer.alloc(32, 7)]), Buffer.alloc(16, 1)))],
  },
  { name: "key envelope", kind: "bytes", parse: decodeEnvelope, seeds: () => [encodeEnvelope({ provider: "vault-1", version: 3, sealed: Buffer.alloc(44, 9) })] },
  { name: "TPM recording", kind: "text", parse: decodeRecording, seeds: () => [JSON.stringify({ format: "tpmtrust-tpm-recording/1", exchanges: [{ command: "80010000000c00000144", response: "80010000000a00000000" }] })] },
  { name: "--tpm spec", kind: "text", parse: parseTpmSpec, seeds: () => ["swtpm:host=127.0.0.1,port=2321", "/dev/tpmrm0"] },
  { name: "--listen", kind: "text", parse: parseListen, seeds: () => ["127.0.0.1:7443", "[::1]:0"] },
  { name: "--pcrs list", kind: "text", parse: parsePcrList, seeds: () => ["0-7", "0,2,4,7"] },
  { name: "base64 field", kind: "json", parse: (v: unknown) => decodeBase64(v, "field"), seeds: () => ["AAEC", rsaEkCert().toString("base64")] },
  { name: "TPM2B_PUBLIC field", kind: "bytes", parse: (b: Buffer) => decodePublic(b, "ekPublic"), seeds: () => [rsaEkPublic()] },
  {
    name: "host identity (agent identify JSON)",
    kind: "json",
    parse: decodeHostIdentity,
    seeds: () => [{ ekPublics: [{ alg: "rsa2048", public: rsaEkPublic().toString("base64") }], ekCertificates: [rsaEkCert().toString("base64")], tpm: { manufacturer: "IFX", vendor: "SLB9670", firmware: "7.85" } }],
  },
  { name: "PKCS#10 certificate request", kind: "bytes", parse: parseCsr, seeds: () => [opensslCsr()] },
  { name: "KAST statement (AD CS key attestation)", kind: "bytes", parse: parseKast, seeds: () => [] },
  { name: "device-attest-01 attestation object (CBOR)", kind: "bytes", parse: decodeAttObj, seeds: () => [] },
  { name: "certificate template", kind: "json", parse: decodeTemplate, seeds: () => [{ name: "web", validityDays: 90, keyTypes: ["ecdsa-p256"], keyAttestation: { mode: "required", trustModels: ["ek-cert"] } }] },
  { name: "DPS SAS token", kind: "text", parse: parseSasToken, seeds: () => ["SharedAccessSignature sr=0ne00000001%2Fregistrations%2Fdev-1&sig=dGVzdHNpZw%3D%3D&se=1700000000&skn=registration"] },
  { name: "DPS authenticationKey", kind: "bytes", parse: parseAuthenticationKey, seeds: () => [] },
  { name: "DPS endorsementKey / storageRootKey", kind: "bytes", parse: decodePublicArea, seeds: () => [rsaEkPublic(), rsaEkPublic().subarray(2)] },
  { name: "baseline policy", kind: "json", parse: parseBaseline, seeds: () => [JSON.parse(JSON.stringify(learnBaseline("b", [parseEventLog(logs()[0])], [0, 1, 2, 3, 4, 5, 6, 7])))] },
  { name: "software policy", kind: "json", parse: parseSoftwarePolicy, seeds: () => [JSON.parse(JSON.stringify(learnSoftware("s", [parseEventLog(logs()[0])])))] },
  { name: "Secure Boot policy", kind: "json", parse: parseSecureBootPolicy, seeds: () => [secureBootPolicy("sb", ["ab".repeat(32)])] },
  { name: "code integrity policy", kind: "json", parse: parseCodeIntegrityPolicy, seeds: () => [codeIntegrityPolicy("ci", "ab".repeat(32))] },
];

// ---- mutations

/** Byte-level mutations of a seed: flips, overwrites, inserts, deletions, truncation, length-field blowups. */
export function mutatedBytes(seeds: Buffer[]): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ op: fc.constant("set" as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff) }),
    fc.record({ op: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    fc.record({ op: fc.constant("delete" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  );
  return fc.tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([i, edits]) => {
    let b = Buffer.from(seeds[i]);
    for (const e of edits) {
      if (b.length === 0) break;
      const at = e.at % b.length;
      if (e.op === "flip") b[at] ^= 1 << e.bit;
      else if (e.op === "set") b[at] = e.byte;
      else if (e.op === "insert") b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)]);
      else if (e.op === "delete") b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.n)]);
      else b = b.subarray(0, at);
    }
    return b;
  });
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Replaces, deletes or retypes one node of a JSON seed (a random path), or adds an unknown key. */
export function mutatedJson(seeds: unknown[]): fc.Arbitrary<unknown> {
  return fc.tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)), fc.boolean()).map(([i, path, value, addKey]) => {
    const root = structuredClone(seeds[i]) as Json;
    let node: Json = root;
    for (let d = 0; d < path.length; d++) {
      if (node === null || typeof node !== "object") break;
      const keys = Object.keys(node);
      if (keys.length === 0) break;
      const k = keys[path[d] % keys.length];
      const child: Json = (node as Record<string, Json>)[k];
      if (d === path.length - 1 || child === null || typeof child !== "object") {
        if (addKey && !Array.isArray(node)) (node as Record<string, Json>)[`x${path[d]}`] = (value ?? null) as Json;
        else if (value === undefined) Array.isArray(node) ? node.splice(Number(k), 1) : delete (node as Record<string, Json>)[k];
        else (node as Record<string, Json>)[k] = value as Json;
        break;
      }
      node = child;
    }
    return root;
  });
}

/** Inputs for a parser: random values of its kind, mutated seeds, and for text/JSON also seed text mutations. */
export function inputsFor(p: ParserCase): fc.Arbitrary<unknown> {
  const seeds = p.seeds();
  if (p.kind === "bytes") {
    const random = fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a));
    return seeds.length ? fc.oneof({ arbitrary: mutatedBytes(seeds as Buffer[]), weight: 3 }, { arbitrary: random, weight: 1 }) : random;
  }
  if (p.kind === "text") {
    const random = fc.string({ unit: "binary", maxLength: 512 });
    return seeds.length ? fc.oneof(mutatedBytes((seeds as string[]).map((s) => Buffer.from(s))).map((b) => b.toString("utf8")), random) : random;
  }
  const random = fc.jsonValue({ maxDepth: 4 });
  return seeds.length ? fc.oneof({ arbitrary: mutatedJson(seeds), weight: 3 }, { arbitrary: random, weight: 1 }) : random;
}

/** Runs the parser; returns undefined if it held the contract, else the offending error. */
export function breaksContract(p: ParserCase, input: unknown): unknown {
  try {
    (p.parse as (x: unknown) => unknown)(input);
    return undefined;
  } catch (e) {
    return isTpmTrustError(e) && /^ERR_[A-Z0-9_]+$/.test(e.code) ? undefined : e;
  }
}
