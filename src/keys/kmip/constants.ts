/** The KMIP 1.4 tags (§9.1.3.1) and enumeration values (§9.1.3.2) this client uses. */
export const TAG = {
  Attribute: 0x420008,
  AttributeName: 0x42000a,
  AttributeValue: 0x42000b,
  AuthenticatedEncryptionAdditionalData: 0x4200fe,
  AuthenticatedEncryptionTag: 0x4200ff,
  BatchCount: 0x42000d,
  BatchItem: 0x42000f,
  BlockCipherMode: 0x420011,
  CryptographicAlgorithm: 0x420028,
  CryptographicLength: 0x42002a,
  CryptographicParameters: 0x42002b,
  CryptographicUsageMask: 0x42002c,
  Data: 0x4200c2,
  DataLength: 0x4200c4,
  IvCounterNonce: 0x42003d,
  Name: 0x420053,
  NameType: 0x420054,
  NameValue: 0x420055,
  ObjectType: 0x420057,
  Operation: 0x42005c,
  ProtocolVersion: 0x420069,
  ProtocolVersionMajor: 0x42006a,
  ProtocolVersionMinor: 0x42006b,
  RequestHeader: 0x420077,
  RequestMessage: 0x420078,
  RequestPayload: 0x420079,
  ResponseHeader: 0x42007a,
  ResponseMessage: 0x42007b,
  ResponsePayload: 0x42007c,
  ResultMessage: 0x42007d,
  ResultReason: 0x42007e,
  ResultStatus: 0x42007f,
  RevocationReason: 0x420081,
  RevocationReasonCode: 0x420082,
  State: 0x42008d,
  TagLength: 0x4200ce,
  TemplateAttribute: 0x420091,
  UniqueIdentifier: 0x420094,
} as const;

/** Operation (§9.1.3.2.27). */
export const OPERATION = {
  Create: 0x01,
  Locate: 0x08,
  GetAttributes: 0x0b,
  Activate: 0x12,
  Revoke: 0x13,
  Destroy: 0x14,
  Encrypt: 0x1f,
  Decrypt: 0x20,
  RngRetrieve: 0x25,
} as const;

export const OBJECT_TYPE_SYMMETRIC_KEY = 0x02; // §9.1.3.2.12
export const ALGORITHM_AES = 0x03; // §9.1.3.2.13
export const BLOCK_CIPHER_MODE_GCM = 0x09; // §9.1.3.2.14
export const NAME_TYPE_TEXT = 0x01; // §9.1.3.2.11 Uninterpreted Text String
export const REVOCATION_CESSATION_OF_OPERATION = 0x06; // §9.1.3.2.19
/** Cryptographic Usage Mask bits (§9.1.3.3.1). */
export const USAGE_ENCRYPT = 0x04;
export const USAGE_DECRYPT = 0x08;

/** State (§9.1.3.2.17). */
export const STATE_NAMES: Record<number, string> = { 1: "Pre-Active", 2: "Active", 3: "Deactivated", 4: "Compromised", 5: "Destroyed", 6: "Destroyed Compromised" };
export const STATE_PRE_ACTIVE = 1;
export const STATE_ACTIVE = 2;

/** Result Status (§9.1.3.2.28): 0 Success. Result Reason (§9.1.3.2.29) values that change what tpmtrust says. */
export const RESULT_SUCCESS = 0;
export const REASON = { ItemNotFound: 0x01, OperationNotSupported: 0x05, CryptographicFailure: 0x0a, PermissionDenied: 0x0c, AuthenticationNotSuccessful: 0x03, GeneralFailure: 0x100 } as const;
