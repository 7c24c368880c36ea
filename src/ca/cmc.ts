/**
 * The Windows key attestation round trip over CMC (MS-WCCE), for a TPM tpmtrust has not bound:
 *
 * 1. Initial request (3.1.1.4.3.4, CA side 3.2.2.6.2.1.2.5): a CMC Full PKI Request (or a bare
 *    PKCS#10) whose PKCS#10 carries the KAST statement (.21.24) and the EK info (.21.23, CMS
 *    EnvelopedData to the CA exchange certificate). The CA decrypts the EK info, judges the EK (ek-key
 *    by its hash, ek-cert by its certificates), verifies the KAST with its AIK and the rest of the
 *    template, then (3.2.2.6.2.1.2.6) keeps the request pending and answers with a CMC Full PKI
 *    Response, status pending, carrying the challenge: a 32-byte secret made with MakeCredential to
 *    the EK over the AIK's Name (2.2.2.8.1.1; its value is the PCP activation blob the client hands
 *    to NCRYPT_PCP_TPM12_IDACTIVATION: TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET), the exchange
 *    certificate's SHA-1 (2.2.2.8.1.2), the content cipher to answer with (2.2.2.8.1.4), and the
 *    request id (RFC 5272 §6.1.1 pendInfo.pendToken, a big-endian u32), signed by the issuing CA with
 *    the exchange certificate and the CA chain attached.
 * 2. Challenge response (client 3.1.1.4.3.4.1.2–3, CA 3.2.2.6.2.1.2.7): CMS EnvelopedData to the
 *    exchange certificate whose content is the secret, with the request id. The request is looked up,
 *    the requester must be the same, the challenge is spent whatever the outcome, the secret must
 *    match; then the request goes through enrollment again (3.2.2.6.2.1.2.7 step 10), now with the EK
 *    proven, and the certificate is issued with the policies of the trust models that passed.
 *
 * 3. AIK attestation (client 3.1.1.4.3.4.2): the AIK info (.21.39, 2.2.2.7.15) instead of the EK
 *    info. Only an AK certificate of tpmtrust's own attestation CA vouches for the AIK (src/ca/evidence.ts
 *    "kast-aik"); the AK was bound by credential activation, so there is no challenge (2.2.2.8.1.1's is
 *    made to an EKpub this request does not carry) and the answer carries the certificate.
 *
 * Placement in the response: 2.2.2.8 names TaggedAttribute (RFC 2797 §3.1) among the CMC response
 * fields used, and 3.2.2.6.2.1.2.6 step 5 adds the 2.2.2.8.1 attributes: controlSequence entries. The
 * request id is ICertRequestD::Request's pdwRequestId, not part of MS-WCCE's CMC; over HTTP it goes
 * out in pendInfo and a header and comes back as ?requestId= (MS-WCCE: the RequestId attribute, 2.2.2.7.10).
 *
 * Tpmtrust keeps SHA-256 of the secret, never the secret (AD CS keeps it encrypted to the exchange
 * key). Failures are audited like enrollment's: events 22/53 with their HRESULT.
 */
import "reflect-metadata";
import { AsnArray, AsnConvert, AsnParser, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from "@peculiar/asn1-schema";
import {
  Attribute,
  CertificateChoices,
  CertificateSet,
  ContentInfo,
  DigestAlgorithmIdentifiers,
  EncapsulatedContent,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  SignedData,
  SignerIdentifier,
  SignerInfo,
  SignerInfos,
  id_envelopedData,
  id_signedData,
} from "@peculiar/asn1-cms";
import { AlgorithmIdentifier, Certificate } from "@peculiar/asn1-x509";
import * as x509 from "@peculiar/x509";
import { createHash, randomBytes, timingSafeEqual, webcrypto } from "node:crypto";
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import { makeCredential } from "../crypto/credential.js";
import { openEnvelope, parseEnvelope, type ParsedEnvelope } from "../crypto/cms.js";
import { toPublicKey } from "../crypto/keys.js";
import type { Store } from "../store/index.js";
import { TPM_ALG } from "../tpm/constants.js";
import { EK_TEMPLATES, type EkKind } from "../tpm/commands/ek.js";
import type { TpmtPublic } from "../tpm/types.js";
import { CMC_OID, CMC_STATUS, CMCStatusInfo, OtherInfo, PendInfo, PKIResponse, TaggedAttribute, BodyPartList } from "../verify/cmc.js";
import { parseAikInfo, parseEkInfo, type AikInfo, type HardwareKeyInfo } from "../verify/ek-info.js";
import { readRequest, requestFacts } from "../verify/request.js";
import { caChain, loadAuthority } from "./authority.js";
import { auditDenied, decideEnrollment, issueEnrollment, type EnrollCaller, type EnrollDecision, type EnrollResult } from "./enroll.js";
import { attributeOctets } from "./evidence.js";
import { CA_OID, HRESULT_KEY_ATTESTATION } from "./oids.js";
import { currentXchg, xchgKey, type Xchg } from "./xchg.js";

/** How long a challenge waits for its answer. */
const CMC_CHALLENGE_TTL_MS = 10 * 60_000;
const SECRET_BYTES = 32;

export interface CmcResult {
  /** "pending": the response carries the EK challenge; "issued": the certificate */
  status: "pending" | "issued";
  requestId?: number;
  /** the CMC Full PKI Response (ContentInfo, DER) */
  response: Buffer;
  issued?: EnrollResult;
}

/** The EK as a TPM public area, from the SubjectPublicKeyInfo the EK info carries: the TCG EK Credential Profile template of its key type fixes nameAlg and the symmetric algorithm MakeCredential needs. */
function ekPublicFromSpki(spki: Uint8Array): TpmtPublic {
  const jwk = toPublicKey(spki).export({ format: "jwk" });
  const b = (v: string | undefined) => Buffer.from(v ?? "", "base64url");
  if (jwk.kty === "RSA") {
    const n = b(jwk.n);
    const kind = ({ 256: "rsa2048", 384: "rsa3072", 512: "rsa4096" } as Record<number, EkKind>)[n.length];
    if (!kind) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `an RSA EK of ${n.length * 8} bits has no EK Credential Profile template`);
    const t = EK_TEMPLATES[kind].template();
    if (t.type !== TPM_ALG.RSA) throw new TpmTrustError("ERR_INTERNAL", "EK template is not RSA");
    const e = b(jwk.e).readUIntBE(0, Math.min(b(jwk.e).length, 6));
    return { ...t, parameters: { ...t.parameters, exponent: e === 65537 ? 0 : e }, unique: n };
  }
  const kind = ({ "P-256": "ecc-p256", "P-384": "ecc-p384", "P-521": "ecc-p521" } as Record<string, EkKind>)[jwk.crv ?? ""];
  if (jwk.kty !== "EC" || !kind) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `an EK of type ${jwk.kty} ${jwk.crv ?? ""} has no EK Credential Profile template`);
  const t = EK_TEMPLATES[kind].template();
  return { ...t, unique: { x: b(jwk.x), y: b(jwk.y) } } as TpmtPublic;
}

/** ERR_DECRYPT_FAILED unless the envelope names this exchange certificate as its recipient. */
function requireRecipient(env: ParsedEnvelope, x: Xchg, what: string): void {
  const r = env.recipient;
  const cert = x.certificate;
  const serial = cert.serialNumber.toLowerCase().replace(/^0+/, "");
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId.toLowerCase();
  const ours = r.subjectKeyIdentifier ? r.subjectKeyIdentifier === ski : r.issuer === cert.issuer && (r.serial ?? "").replace(/^0+/, "") === serial;
  if (!ours) {
    throw new TpmTrustError(
      "ERR_DECRYPT_FAILED",
      `${what} is encrypted to another certificate (${r.issuer ?? r.subjectKeyIdentifier} serial ${r.serial ?? "-"}), not this CA's current exchange certificate (${cert.issuer} serial ${cert.serialNumber}): fetch it again (GET /v1/ca/xchg)`,
      { recipient: r },
    );
  }
}

async function decrypt(store: Store, der: Uint8Array, what: string, c: EnrollCaller): Promise<{ content: Buffer; env: ParsedEnvelope; xchg: Xchg }> {
  const env = parseEnvelope(der);
  const xchg = await currentXchg(store, { actor: c.actor, now: c.now });
  requireRecipient(env, xchg, what);
  return { content: openEnvelope(env, await xchgKey(store, xchg)), env, xchg };
}

// ---- the CMC Full PKI Response (RFC 5272 §3.2.3), signed by the issuing CA

@AsnType({ type: AsnTypeTypes.Set, itemType: Attribute })
class SignedAttributeSet extends AsnArray<Attribute> {}

/** a bare OBJECT IDENTIFIER value */
@AsnType({ type: AsnTypeTypes.Choice })
class Oid {
  @AsnProp({ type: AsnPropTypes.ObjectIdentifier }) value: string;
  constructor(value = "") {
    this.value = value;
  }
}

const OID = {
  sha256: "2.16.840.1.101.3.4.2.1",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  sha256WithRsa: "1.2.840.113549.1.1.11",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
};

const der = (v: unknown) => Buffer.from(AsnConvert.serialize(v));
const u32be = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

async function cmcResponse(store: Store, o: { bodyPartId: number; status: "success" | "pending"; requestId?: number; attributes?: { type: string; value: Buffer }[]; certificates: Buffer[]; now: number }): Promise<Buffer> {
  const status = new CMCStatusInfo({
    cMCStatus: o.status === "success" ? CMC_STATUS.success : CMC_STATUS.pending,
    bodyList: new BodyPartList([o.bodyPartId]),
    ...(o.requestId !== undefined
      ? { statusString: "key attestation challenge: answer with the decrypted secret", otherInfo: new OtherInfo({ pendInfo: new PendInfo({ pendToken: new Uint8Array(u32be(o.requestId)).buffer, pendTime: new Date(o.now) }) }) }
      : {}),
  });
  const controls = [new TaggedAttribute({ bodyPartID: 1, attrType: CMC_OID.statusInfo, attrValues: [AsnConvert.serialize(status)] })];
  (o.attributes ?? []).forEach((a, i) => controls.push(new TaggedAttribute({ bodyPartID: 2 + i, attrType: a.type, attrValues: [new Uint8Array(a.value).buffer] })));
  const content = der(new PKIResponse({ controlSequence: controls }));

  const { signer } = await loadAuthority(store);
  const signedAttrs = [
    new Attribute({ attrType: OID.contentType, attrValues: [AsnConvert.serialize(new Oid(CMC_OID.pkiResponse))] }),
    new Attribute({ attrType: OID.messageDigest, attrValues: [AsnConvert.serialize(new OctetString(createHash("sha256").update(content).digest()))] }),
  ];
  const ec = signer.signingAlgorithm.name === "ECDSA";
  let signature = Buffer.from(await webcrypto.subtle.sign({ ...signer.signingAlgorithm, hash: "SHA-256" } as EcdsaParams, signer.signingKey, der(new SignedAttributeSet(signedAttrs))));
  if (ec) signature = Buffer.from(new x509.AsnEcSignatureFormatter().toAsnSignature({ name: "ECDSA", namedCurve: "P-256" } as EcKeyAlgorithm, signature)!);
  const issuer = AsnParser.parse(signer.certificate.rawData, Certificate).tbsCertificate;
  const sd = new SignedData({
    version: 3,
    digestAlgorithms: new DigestAlgorithmIdentifiers([new AlgorithmIdentifier({ algorithm: OID.sha256 })]),
    encapContentInfo: new EncapsulatedContentInfo({ eContentType: CMC_OID.pkiResponse, eContent: new EncapsulatedContent({ single: new OctetString(content) }) }),
    certificates: new CertificateSet(o.certificates.map((c) => new CertificateChoices({ certificate: AsnParser.parse(c, Certificate) }))),
    signerInfos: new SignerInfos([
      new SignerInfo({
        version: 1,
        sid: new SignerIdentifier({ issuerAndSerialNumber: new IssuerAndSerialNumber({ issuer: issuer.issuer, serialNumber: issuer.serialNumber }) }),
        digestAlgorithm: new AlgorithmIdentifier({ algorithm: OID.sha256 }),
        signedAttrs,
        signatureAlgorithm: ec ? new AlgorithmIdentifier({ algorithm: OID.ecdsaWithSha256 }) : new AlgorithmIdentifier({ algorithm: OID.sha256WithRsa, parameters: null }),
        signature: new OctetString(signature),
      }),
    ]),
  });
  return der(new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(sd) }));
}

// ---- the two requests

function bodyPartOf(req: ReturnType<typeof readRequest>): number {
  return req.cmc?.bodyPartId ?? 1;
}

/**
 * POST /v1/ca/cmc: an initial request (CMC Full PKI Request or PKCS#10), or with `requestId` the
 * answer to its challenge (CMS EnvelopedData). `template` names the template when the request does not.
 */
export async function cmcRequest(store: Store, body: Buffer, o: { template?: string; requestId?: number }, c: EnrollCaller): Promise<CmcResult> {
  if (isEnvelope(body)) {
    if (o.requestId === undefined) throw new TpmTrustError("ERR_VALIDATION", "a challenge answer (EnvelopedData) needs the request id it answers (?requestId=N)", { field: "requestId" });
    return answerChallenge(store, body, o.requestId, c);
  }
  if (o.requestId !== undefined) throw new TpmTrustError("ERR_VALIDATION", "a request id goes only with a challenge answer (EnvelopedData), not with a new request", { field: "requestId" });
  return initialRequest(store, body, o.template, c);
}

function isEnvelope(body: Buffer): boolean {
  try {
    return AsnParser.parse(body, ContentInfo).contentType === id_envelopedData;
  } catch {
    return false;
  }
}

async function initialRequest(store: Store, body: Buffer, templateName: string | undefined, c: EnrollCaller): Promise<CmcResult> {
  const req = readRequest(body);
  const template = templateName ?? requestFacts(req).template?.name;
  if (!template) throw new TpmTrustError("ERR_VALIDATION", "the request names no certificate template (extension 1.3.6.1.4.1.311.20.2 or .21.7, or ?template=NAME)", { field: "template" });
  const bodyPartId = bodyPartOf(req);
  const issued = async (d: EnrollDecision): Promise<CmcResult> => {
    const r = await issueEnrollment(store, d, { template }, c);
    return { status: "issued", issued: r, response: await cmcResponse(store, { bodyPartId, status: "success", certificates: [r.certificate, ...r.chain], now: c.now }) };
  };
  const aikAttr = attributeOctets(req.csr, [CA_OID.aikInfo], false);
  const ekAttr = attributeOctets(req.csr, [CA_OID.ekInfo], false);
  if (aikAttr) {
    // MS-WCCE 3.1.1.4.3.4.2 (AIK attestation, subject only): the AIK info instead of the EK info
    let aik: AikInfo;
    try {
      if (ekAttr) throw new TpmTrustError("ERR_VALIDATION", "the request carries both the EK info (1.3.6.1.4.1.311.21.23) and the AIK info (1.3.6.1.4.1.311.21.39): send one");
      aik = parseAikInfo((await decrypt(store, aikAttr.value, "the AIK info", c)).content);
    } catch (e) {
      if (!isTpmTrustError(e)) throw e;
      throw await auditDenied(store, { template }, c, e, { stage: "attestation", facts: { format: "kast-aik", subject: req.csr.subject }, hresult: HRESULT_KEY_ATTESTATION });
    }
    // no challenge: the EK challenge (2.2.2.8.1.1) is made to an EKpub this request does not carry; the AK
    // certificate is tpmtrust's word that the AK was bound to a trusted EK by credential activation
    return decideEnrollment(store, { template, csr: req.csr.der, aik }, c, issued);
  }
  if (!ekAttr) return decideEnrollment(store, { template, csr: req.csr.der }, c, issued);

  // MS-WCCE 3.2.2.6.2.1.2.5 steps 1–2: decrypt the EK info with the current exchange key, load the EKpub
  let info: HardwareKeyInfo;
  let cipher: string;
  try {
    const { content, env } = await decrypt(store, ekAttr.value, "the EK info", c);
    info = parseEkInfo(content);
    cipher = env.contentEncryptionAlgorithm;
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    throw await auditDenied(store, { template }, c, e, { stage: "attestation", facts: { format: "kast-ek", subject: req.csr.subject }, hresult: HRESULT_KEY_ATTESTATION });
  }
  return decideEnrollment(store, { template, csr: req.csr.der, ek: { info, proven: false } }, c, async (d) => {
    // without a verified KAST (template mode none, or required-if-capable and it failed) nothing is challenged
    if (d.verified?.format !== "kast-ek") return issued(d);
    const secret = randomBytes(SECRET_BYTES);
    const cred = makeCredential(ekPublicFromSpki(info.publicKey), d.verified.akName, secret);
    // the pending request and its entry commit together
    const pending = await store.transaction(async (tx) => {
      const pending = await tx.caPending.create({
        template,
        csr: d.csr.der,
        ekPublic: info.publicKey,
        ekCerts: info.certificates,
        ekHash: d.models!.ekHashes[0],
        aikName: d.verified!.akName,
        secretHash: createHash("sha256").update(secret).digest(),
        requester: { actor: c.actor, tokenId: c.requester?.tokenId ?? null },
        ttlMs: CMC_CHALLENGE_TTL_MS,
        at: c.now,
      });
      await tx.audit.append({
        actor: c.actor,
        action: "ca.request.pending",
        subject: template,
        outcome: "success",
        details: { requestId: pending.requestId, ...d.facts, trustModels: d.models!.passed, expiresAt: pending.expiresAt },
        at: c.now,
      });
      return pending;
    });
    const xchg = await currentXchg(store, { actor: c.actor, now: c.now });
    const response = await cmcResponse(store, {
      bodyPartId,
      status: "pending",
      requestId: pending.requestId,
      attributes: [
        { type: CA_OID.attestationChallenge, value: der(new OctetString(Buffer.concat([cred.credentialBlob, cred.secret]))) },
        { type: CA_OID.xchgCertHash, value: der(new OctetString(createHash("sha1").update(Buffer.from(xchg.certificate.rawData)).digest())) },
        { type: CA_OID.encryptionAlgorithm, value: der(new AlgorithmIdentifier({ algorithm: cipher })) },
      ],
      certificates: [Buffer.from(xchg.certificate.rawData), ...(await caChain(store))],
      now: c.now,
    });
    return { status: "pending", requestId: pending.requestId, response };
  });
}

/** MS-WCCE 3.2.2.6.2.1.2.7: the answer to a pending request's challenge. */
async function answerChallenge(store: Store, body: Buffer, requestId: number, c: EnrollCaller): Promise<CmcResult> {
  const facts: Record<string, unknown> = { format: "kast-ek", requestId };
  let template = "(unknown)";
  let pending;
  try {
    // step 1: the request; step 3: the same requester (before the challenge is spent, so another cannot burn it)
    const seen = await store.caPending.get(requestId);
    if (!seen) throw new TpmTrustError("ERR_NONCE_UNKNOWN", `no pending key attestation request ${requestId}`, { requestId });
    template = seen.template;
    facts.ekHash = seen.ekHash;
    facts.akName = seen.aikName.toString("hex");
    if ((c.requester?.tokenId ?? null) !== seen.requester.tokenId) {
      throw new TpmTrustError("ERR_FORBIDDEN", `request ${requestId} was made by another requester: the answer must come from the original requester`, { requestId });
    }
    // steps 4–5: one answer, right or wrong
    pending = await store.caPending.claim(requestId, c.now);
    // steps 6–8
    const { content } = await decrypt(store, body, "the challenge answer", c);
    const got = createHash("sha256").update(content).digest();
    if (!timingSafeEqual(got, pending.secretHash)) throw new TpmTrustError("ERR_ACTIVATION_FAILED", `the answer to request ${requestId}'s challenge is not its secret: the TPM that answered does not hold the EK and the AIK`, { requestId });
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    throw await auditDenied(store, { template }, c, e, { stage: "attestation", facts, hresult: HRESULT_KEY_ATTESTATION });
  }
  // steps 9–10: satisfied; the request goes through enrollment again with the EK proven
  const p = pending;
  return decideEnrollment(store, { template: p.template, csr: p.csr, ek: { info: { publicKey: p.ekPublic, certificates: p.ekCerts }, proven: true }, requestId }, c, async (d) => {
    if (d.verified && (!d.verified.akName.equals(p.aikName) || d.models?.ekHashes[0] !== p.ekHash)) {
      throw new TpmTrustError("ERR_INTERNAL", `request ${requestId} no longer names the EK and AIK its challenge was made for`);
    }
    const r = await issueEnrollment(store, d, { template: p.template }, c);
    return { status: "issued", requestId, issued: r, response: await cmcResponse(store, { bodyPartId: 1, status: "success", certificates: [r.certificate, ...r.chain], now: c.now }) };
  });
}
