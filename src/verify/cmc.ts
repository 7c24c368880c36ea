/**
 * CMC (RFC 5272) as AD CS clients use it (MS-WCCE 2.2.2.6.2 CMC Full PKI Request): ContentInfo →
 * SignedData whose eContent is a PKIData carrying the PKCS#10; the CA's Full PKI Response is a
 * SignedData whose eContent is a PKIResponse. Schemas for @peculiar/asn1-schema (RFC 5272 §3.2,
 * §4.1, module with IMPLICIT TAGS) and a strict reader of the request. Pure.
 */
import { AsnArray, AsnParser, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from "@peculiar/asn1-schema";
import { ContentInfo, SignedData, id_signedData } from "@peculiar/asn1-cms";
import { TpmTrustError } from "../errors.js";
import { readTlv } from "./ek/der.js";

export const CMC_OID = {
  /** id-cct-PKIData */
  pkiData: "1.3.6.1.5.5.7.12.2",
  /** id-cct-PKIResponse */
  pkiResponse: "1.3.6.1.5.5.7.12.3",
  /** id-cmc-statusInfo */
  statusInfo: "1.3.6.1.5.5.7.7.1",
  /** id-cmc-regInfo (AD CS puts name-value pairs here) */
  regInfo: "1.3.6.1.5.5.7.7.18",
} as const;

/** CMCStatus (RFC 5272 §6.1.1) */
export const CMC_STATUS = { success: 0, failed: 2, pending: 3 } as const;

@AsnType({ type: AsnTypeTypes.Sequence })
export class TaggedAttribute {
  @AsnProp({ type: AsnPropTypes.Integer }) bodyPartID = 0;
  @AsnProp({ type: AsnPropTypes.ObjectIdentifier }) attrType = "";
  @AsnProp({ type: AsnPropTypes.Any, repeated: "set" }) attrValues: ArrayBuffer[] = [];
  constructor(p: Partial<TaggedAttribute> = {}) {
    Object.assign(this, p);
  }
}

@AsnType({ type: AsnTypeTypes.Sequence })
class TaggedCertificationRequest {
  @AsnProp({ type: AsnPropTypes.Integer }) bodyPartID = 0;
  /** the PKCS#10 CertificationRequest, DER as sent */
  @AsnProp({ type: AsnPropTypes.Any }) certificationRequest: ArrayBuffer = new ArrayBuffer(0);
}

@AsnType({ type: AsnTypeTypes.Choice })
class TaggedRequest {
  @AsnProp({ type: TaggedCertificationRequest, context: 0, implicit: true }) tcr?: TaggedCertificationRequest;
  /** crm: CRMF CertReqMsg (not accepted, kept to name it) */
  @AsnProp({ type: AsnPropTypes.Any, context: 1, implicit: true }) crm?: ArrayBuffer;
  @AsnProp({ type: AsnPropTypes.Any, context: 2, implicit: true }) orm?: ArrayBuffer;
}

@AsnType({ type: AsnTypeTypes.Sequence })
class TaggedContentInfo {
  @AsnProp({ type: AsnPropTypes.Integer }) bodyPartID = 0;
  @AsnProp({ type: AsnPropTypes.Any }) contentInfo: ArrayBuffer = new ArrayBuffer(0);
}

@AsnType({ type: AsnTypeTypes.Sequence })
class OtherMsg {
  @AsnProp({ type: AsnPropTypes.Integer }) bodyPartID = 0;
  @AsnProp({ type: AsnPropTypes.ObjectIdentifier }) otherMsgType = "";
  @AsnProp({ type: AsnPropTypes.Any }) otherMsgValue: ArrayBuffer = new ArrayBuffer(0);
}

@AsnType({ type: AsnTypeTypes.Sequence })
class PKIData {
  @AsnProp({ type: TaggedAttribute, repeated: "sequence" }) controlSequence: TaggedAttribute[] = [];
  @AsnProp({ type: TaggedRequest, repeated: "sequence" }) reqSequence: TaggedRequest[] = [];
  @AsnProp({ type: TaggedContentInfo, repeated: "sequence" }) cmsSequence: TaggedContentInfo[] = [];
  @AsnProp({ type: OtherMsg, repeated: "sequence" }) otherMsgSequence: OtherMsg[] = [];
}

@AsnType({ type: AsnTypeTypes.Sequence })
export class PKIResponse {
  @AsnProp({ type: TaggedAttribute, repeated: "sequence" }) controlSequence: TaggedAttribute[] = [];
  @AsnProp({ type: TaggedContentInfo, repeated: "sequence" }) cmsSequence: TaggedContentInfo[] = [];
  @AsnProp({ type: OtherMsg, repeated: "sequence" }) otherMsgSequence: OtherMsg[] = [];
  constructor(p: Partial<PKIResponse> = {}) {
    Object.assign(this, p);
  }
}

@AsnType({ type: AsnTypeTypes.Sequence })
export class PendInfo {
  @AsnProp({ type: AsnPropTypes.OctetString }) pendToken: ArrayBuffer = new ArrayBuffer(0);
  @AsnProp({ type: AsnPropTypes.GeneralizedTime }) pendTime = new Date();
  constructor(p: Partial<PendInfo> = {}) {
    Object.assign(this, p);
  }
}

@AsnType({ type: AsnTypeTypes.Choice })
export class OtherInfo {
  @AsnProp({ type: AsnPropTypes.Integer }) failInfo?: number;
  @AsnProp({ type: PendInfo }) pendInfo?: PendInfo;
  constructor(p: Partial<OtherInfo> = {}) {
    Object.assign(this, p);
  }
}

@AsnType({ type: AsnTypeTypes.Sequence, itemType: AsnPropTypes.Integer })
export class BodyPartList extends AsnArray<number> {}

@AsnType({ type: AsnTypeTypes.Sequence })
export class CMCStatusInfo {
  @AsnProp({ type: AsnPropTypes.Integer }) cMCStatus = 0;
  @AsnProp({ type: BodyPartList }) bodyList = new BodyPartList();
  @AsnProp({ type: AsnPropTypes.Utf8String, optional: true }) statusString?: string;
  @AsnProp({ type: OtherInfo, optional: true }) otherInfo?: OtherInfo;
  constructor(p: Partial<CMCStatusInfo> = {}) {
    Object.assign(this, p);
  }
}

export interface CmcRequest {
  /** the PKCS#10, DER */
  csr: Buffer;
  bodyPartId: number;
  /** control attributes: type and DER values */
  controls: { type: string; values: Buffer[] }[];
  /** the SignedData, for the signer check */
  signedData: SignedData;
}

function cmcError(message: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_CSR", `CMC request: ${message}`);
}

/** True when `der` is a ContentInfo (SEQUENCE { OBJECT IDENTIFIER, … }) rather than a PKCS#10 (SEQUENCE { SEQUENCE, … }). */
export function isContentInfo(der: Buffer): boolean {
  try {
    const outer = readTlv(der, 0);
    return outer.tag === 0x30 && readTlv(der, outer.contentStart, outer.end).tag === 0x06;
  } catch {
    return false;
  }
}

/** Reads a CMC Full PKI Request with exactly one PKCS#10 (tcr). ERR_PARSE_CSR for anything else. */
export function parseCmcRequest(der: Buffer): CmcRequest {
  let ci: ContentInfo;
  let sd: SignedData;
  let pki: PKIData;
  try {
    ci = AsnParser.parse(der, ContentInfo);
  } catch (e) {
    throw cmcError(`not a CMS ContentInfo: ${(e as Error).message}`);
  }
  if (ci.contentType !== id_signedData) throw cmcError(`content type ${ci.contentType} is not SignedData`);
  try {
    sd = AsnParser.parse(ci.content, SignedData);
  } catch (e) {
    throw cmcError(`SignedData does not parse: ${(e as Error).message}`);
  }
  if (sd.encapContentInfo.eContentType !== CMC_OID.pkiData) throw cmcError(`eContentType ${sd.encapContentInfo.eContentType} is not id-cct-PKIData`);
  const e = sd.encapContentInfo.eContent;
  const content = e?.single?.buffer ?? (e?.any ? e.any : undefined);
  if (!content) throw cmcError("the SignedData carries no PKIData");
  try {
    pki = AsnParser.parse(content, PKIData);
  } catch (err) {
    throw cmcError(`PKIData does not parse: ${(err as Error).message}`);
  }
  const tcrs = pki.reqSequence.filter((r) => r.tcr);
  if (pki.reqSequence.length !== 1 || tcrs.length !== 1) throw cmcError(`expected exactly one PKCS#10 request, found ${pki.reqSequence.length} requests (${tcrs.length} PKCS#10)`);
  const tcr = tcrs[0].tcr!;
  return {
    csr: Buffer.from(tcr.certificationRequest),
    bodyPartId: tcr.bodyPartID,
    controls: pki.controlSequence.map((c) => ({ type: c.attrType, values: c.attrValues.map((v) => Buffer.from(v)) })),
    signedData: sd,
  };
}
