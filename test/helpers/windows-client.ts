/**
 * A Windows-shaped key attestation client made of tpm2-tools + openssl, not tpmtrust's agent: it
 * builds what the Microsoft Platform Crypto Provider sends (MS-WCCE 2.2.2.5 KAST with a PCP "KADS"
 * key attestation around tpm2_certify output and "PCPM" key blobs; the EK info as CMS EnvelopedData
 * made by `openssl cms -encrypt`; a CMC Full PKI Request signed by `openssl cms -sign`) and answers
 * the CA's challenge with tpm2_activatecredential. The CSR's CertificationRequestInfo is assembled
 * here and signed by the TPM key with tpm2_sign.
 */
import "reflect-metadata";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AsnConvert, AsnParser } from "@peculiar/asn1-schema";
import { Attribute, Name as AsnName, SubjectPublicKeyInfo, AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { Attributes, CertificationRequest, CertificationRequestInfo } from "@peculiar/asn1-csr";
import * as x509 from "@peculiar/x509";
import { runTool, tpm2, tpm2Raw } from "./tpm2tools.js";
import type { Swtpm } from "./swtpm.js";

const u32le = (...v: number[]) => Buffer.concat(v.map((n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; }));
export const sized = (b: Buffer) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);

/** A PCP key blob ("PCPM", 56-byte header as Windows 11 writes it) around TPM2B_PUBLIC ‖ TPM2B_PRIVATE. */
export function pcpKeyBlob(pub: Buffer, priv: Buffer, policyDigestList = Buffer.alloc(0)): Buffer {
  const header = Buffer.concat([u32le(0x4d504350, 56, 2, 0, pub.length, priv.length, 0, 0, policyDigestList.length, 0, 0, 0, 0), Buffer.alloc(4)]);
  return Buffer.concat([header, pub, priv, policyDigestList]);
}

/** The PCP key attestation ("KADS"): header ‖ TPMS_ATTEST ‖ raw signature ‖ key blob. */
export function kads(attest: Buffer, signature: Buffer, keyBlob: Buffer): Buffer {
  return Buffer.concat([u32le(0x5344414b, 2, 24, attest.length, signature.length, keyBlob.length), attest, signature, keyBlob]);
}

export function kast(idBinding: Buffer, keyAttestation: Buffer, aikOpaque: Buffer): Buffer {
  return Buffer.concat([u32le(0x5453414b, 1, 2, 28, idBinding.length, keyAttestation.length, aikOpaque.length), idBinding, keyAttestation, aikOpaque]);
}

/** An attribute value wrapped in a DER OCTET STRING. */
export function octets(b: Buffer): Buffer {
  const len = b.length < 0x80 ? Buffer.from([b.length]) : b.length < 0x100 ? Buffer.from([0x81, b.length]) : Buffer.from([0x82, b.length >> 8, b.length & 0xff]);
  return Buffer.concat([Buffer.from([0x04]), len, b]);
}

/** A DER BMPString. */
export function bmp(s: string): Buffer {
  const v = Buffer.from(s, "utf16le").swap16();
  return Buffer.concat([Buffer.from([0x1e, v.length]), v]);
}

export interface TpmKey {
  name: string;
  /** TPM2B_PUBLIC, TPM2B_PRIVATE as tpm2_create wrote them */
  pub: Buffer;
  priv: Buffer;
  ctx: string;
  /** DER SubjectPublicKeyInfo */
  spki: Buffer;
}

export class WindowsClient {
  aik!: TpmKey;
  idBinding!: Buffer;
  ekSpki!: Buffer;
  private srk: string;
  private ek: string;

  constructor(
    readonly tpm: Swtpm,
    readonly dir: string,
    readonly aikHash: "sha1" | "sha256" = "sha1",
  ) {
    this.srk = join(dir, "srk.ctx");
    this.ek = join(dir, "ek.ctx");
  }

  f(name: string): string {
    return join(this.dir, name);
  }

  /** SRK, the EK (RSA, default template) and an AIK under the SRK with its CertifyCreation of itself (idBinding). */
  async init(): Promise<this> {
    const t = this.tpm;
    await tpm2(t, "tpm2_createprimary", ["-C", "o", "-g", "sha256", "-G", "rsa2048:null:aes128cfb", "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", this.srk]);
    await tpm2(t, "tpm2_createek", ["-c", this.ek, "-G", "rsa", "-u", this.f("ek.pub")]);
    await tpm2(t, "tpm2_readpublic", ["-c", this.ek, "-f", "der", "-o", this.f("ek.der")]);
    this.ekSpki = readFileSync(this.f("ek.der"));
    const a = this.f("aik");
    await tpm2(t, "tpm2_create", ["-C", this.srk, "-g", "sha256", "-G", `rsa2048:rsassa-${this.aikHash}:null`, "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign", "-u", `${a}.pub`, "-r", `${a}.priv`, "--creation-data", `${a}.cd`, "--creation-ticket", `${a}.tk`, "--creation-hash", `${a}.ch`]);
    this.aik = await this.load("aik");
    await tpm2(t, "tpm2_certifycreation", ["-C", this.aik.ctx, "-c", this.aik.ctx, "-d", `${a}.ch`, "-t", `${a}.tk`, "-g", this.aikHash, "-s", "rsassa", "-o", `${a}.sig`, "--attestation", `${a}.attest`]);
    this.idBinding = Buffer.concat([this.aik.pub, readFileSync(`${a}.cd`), sized(readFileSync(`${a}.attest`)), readFileSync(`${a}.sig`)]);
    return this;
  }

  private async load(name: string): Promise<TpmKey> {
    const p = this.f(name);
    await tpm2(this.tpm, "tpm2_load", ["-C", this.srk, "-u", `${p}.pub`, "-r", `${p}.priv`, "-c", `${p}.ctx`]);
    await tpm2(this.tpm, "tpm2_readpublic", ["-c", `${p}.ctx`, "-f", "der", "-o", `${p}.der`]);
    return { name, pub: readFileSync(`${p}.pub`), priv: readFileSync(`${p}.priv`), ctx: `${p}.ctx`, spki: readFileSync(`${p}.der`) };
  }

  /** A key as the PCP makes one for a template: RSA-2048, sign|decrypt, no scheme; `attrs` to vary it. */
  async newKey(name: string, attrs = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|decrypt"): Promise<TpmKey> {
    const p = this.f(name);
    await tpm2(this.tpm, "tpm2_create", ["-C", this.srk, "-g", "sha256", "-G", "rsa2048:null:null", "-a", attrs, "-u", `${p}.pub`, "-r", `${p}.priv`]);
    return this.load(name);
  }

  /** tpm2_certify of `key` by `signer` (default the AIK) as a KADS blob. */
  async keyAttestation(key: TpmKey, signer: TpmKey = this.aik, hash = this.aikHash): Promise<Buffer> {
    const p = this.f(`${key.name}.by-${signer.name}`);
    await tpm2(this.tpm, "tpm2_certify", ["-c", key.ctx, "-C", signer.ctx, "-g", hash, "-o", `${p}.attest`, "-s", `${p}.sig`, "-f", "plain"]);
    return kads(readFileSync(`${p}.attest`), readFileSync(`${p}.sig`), pcpKeyBlob(key.pub, key.priv));
  }

  /** The whole KAST statement for `key`. */
  async statement(key: TpmKey): Promise<Buffer> {
    return kast(this.idBinding, await this.keyAttestation(key), pcpKeyBlob(this.aik.pub, this.aik.priv));
  }

  /** A PKCS#10 for `key`'s public key with `attributes` (type, DER values), signed by `signer` (default `key`) with tpm2_sign. */
  async csr(key: TpmKey, subject: string, attributes: { type: string; values: Buffer[] }[], signer: TpmKey = key, spki: Buffer = key.spki): Promise<Buffer> {
    const cri = new CertificationRequestInfo({
      version: 0,
      subject: AsnParser.parse(new x509.Name(subject).toArrayBuffer(), AsnName),
      subjectPKInfo: AsnParser.parse(spki, SubjectPublicKeyInfo),
      attributes: new Attributes(attributes.map((a) => new Attribute({ type: a.type, values: a.values.map((v) => new Uint8Array(v).buffer) }))),
    });
    const tbs = Buffer.from(AsnConvert.serialize(cri));
    const p = this.f(`${key.name}.cri`);
    writeFileSync(p, tbs);
    await tpm2Raw(this.tpm, "tpm2_sign", ["-c", signer.ctx, "-g", "sha256", "-s", "rsassa", "-f", "plain", "-o", `${p}.sig`, p]);
    const req = new CertificationRequest({
      certificationRequestInfo: cri,
      signatureAlgorithm: new AlgorithmIdentifier({ algorithm: "1.2.840.113549.1.1.11", parameters: new Uint8Array([5, 0]).buffer }),
      signature: new Uint8Array(readFileSync(`${p}.sig`)).buffer,
    });
    return Buffer.from(AsnConvert.serialize(req));
  }

  /** EndorsementKeyInfo (MS-WCCE 2.2.2.7.13) encrypted by `openssl cms -encrypt` to `recipientPem`. */
  async ekInfo(recipientPem: string, ekSpki: Buffer = this.ekSpki, ekCertDer?: Buffer): Promise<Buffer> {
    return this.envelope(recipientPem, [ekSpki, ekCertDer ?? Buffer.from([0x05, 0x00])]);
  }

  /** AttestationIdentityKeyInfo (MS-WCCE 2.2.2.7.15: the AIKpub, then the AIK certificate if any) encrypted by `openssl cms -encrypt` to `recipientPem`. */
  async aikInfo(recipientPem: string, aikCertDer?: Buffer, aikSpki: Buffer = this.aik.spki): Promise<Buffer> {
    return this.envelope(recipientPem, aikCertDer ? [aikSpki, aikCertDer] : [aikSpki]);
  }

  /** SEQUENCE OF `elements` (each DER, 256 bytes or more in all) encrypted to `recipientPem`. */
  private async envelope(recipientPem: string, elements: Buffer[]): Promise<Buffer> {
    const body = Buffer.concat(elements);
    const seq = Buffer.concat([Buffer.from([0x30, 0x82, body.length >> 8, body.length & 0xff]), body]);
    writeFileSync(this.f("keyinfo.der"), seq);
    writeFileSync(this.f("xchg.pem"), recipientPem);
    return runTool("openssl", ["cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", "-in", this.f("keyinfo.der"), this.f("xchg.pem")]);
  }

  /** The EK certificate the TPM holds in NV (RSA 2048, index 0x01c00002), DER as read. */
  async ekCertificate(): Promise<Buffer> {
    const out = this.f("ekcert.der");
    await tpm2(this.tpm, "tpm2_nvread", ["-C", "o", "-o", out, "0x1c00002"]);
    return readFileSync(out);
  }

  /**
   * Answers a CA challenge as the Platform Crypto Provider does: the challenge is the PCP activation
   * blob (TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET), activated with tpm2_activatecredential; the secret
   * is sent back encrypted by `openssl cms -encrypt` to the exchange certificate with `cipher`.
   */
  async answer(challenge: Buffer, xchgPem: string, cipher = "-aes256"): Promise<Buffer> {
    const idLen = challenge.readUInt16BE(0);
    const secret = await this.activate(challenge.subarray(0, 2 + idLen), challenge.subarray(2 + idLen));
    if (secret.length !== 32) throw new Error(`the activated secret has ${secret.length} bytes, not 32`);
    writeFileSync(this.f("xchg.pem"), xchgPem);
    return runTool("openssl", ["cms", "-encrypt", "-binary", cipher, "-outform", "DER", "-in", this.f("secret.bin"), this.f("xchg.pem")]);
  }

  /** TPM2_ActivateCredential of a (credentialBlob, secret) pair for the AIK with the EK (policy session for the EK's auth). */
  async activate(credentialBlob: Buffer, encryptedSecret: Buffer, aik: TpmKey = this.aik): Promise<Buffer> {
    const cred = this.f("challenge.cred");
    writeFileSync(cred, Buffer.concat([Buffer.from("badcc0de00000001", "hex"), credentialBlob, encryptedSecret]));
    const session = this.f("session.ctx");
    await tpm2(this.tpm, "tpm2_startauthsession", ["--policy-session", "-S", session], { flush: false });
    await tpm2(this.tpm, "tpm2_policysecret", ["-S", session, "-c", "e"], { flush: false });
    await tpm2(this.tpm, "tpm2_activatecredential", ["-c", aik.ctx, "-C", this.ek, "-i", cred, "-o", this.f("secret.bin"), "-P", `session:${session}`]);
    return readFileSync(this.f("secret.bin"));
  }
}

/**
 * Reads a CMC Full PKI Response as a client does: `openssl cms -verify` checks the CA's signature and
 * chain to `rootPem`, and hands out the PKIResponse and the certificates it carries.
 */
export async function readCmcResponse(dir: string, der: Buffer, rootPem: string): Promise<{ pkiResponse: Buffer; certificatesPem: string }> {
  const w = (n: string) => join(dir, n);
  writeFileSync(w("resp.der"), der);
  writeFileSync(w("root.pem"), rootPem);
  const pkiResponse = await runTool("openssl", ["cms", "-verify", "-inform", "DER", "-in", w("resp.der"), "-CAfile", w("root.pem"), "-purpose", "any", "-binary", "-certsout", w("resp-certs.pem")]);
  return { pkiResponse, certificatesPem: readFileSync(w("resp-certs.pem"), "utf8") };
}

/** A CMC Full PKI Request (RFC 5272 PKIData with one tcr) around `csrDer`, signed by `openssl cms -sign` with a throwaway signer. */
export async function cmcRequest(dir: string, csrDer: Buffer, controls: Buffer[] = []): Promise<Buffer> {
  const tlv = (tag: number, body: Buffer) => {
    const n = body.length;
    const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
    return Buffer.concat([Buffer.from([tag]), len, body]);
  };
  const tcr = tlv(0xa0, Buffer.concat([Buffer.from([0x02, 0x01, 0x01]), csrDer]));
  const pkiData = tlv(0x30, Buffer.concat([tlv(0x30, Buffer.concat(controls)), tlv(0x30, tcr), tlv(0x30, Buffer.alloc(0)), tlv(0x30, Buffer.alloc(0))]));
  const w = (n: string) => join(dir, n);
  writeFileSync(w("pkidata.der"), pkiData);
  await runTool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=cmc-signer", "-days", "1", "-keyout", w("cmc-signer.key"), "-out", w("cmc-signer.pem")]);
  return runTool("openssl", ["cms", "-sign", "-binary", "-nodetach", "-econtent_type", "1.3.6.1.5.5.7.12.2", "-signer", w("cmc-signer.pem"), "-inkey", w("cmc-signer.key"), "-outform", "DER", "-in", w("pkidata.der")]);
}
