/**
 * A DPS device in software, for tests and benchmarks that must not spend their time in a TPM: an
 * EK and SRK with private keys, and the TPM's side of the authenticationKey (Part 3 §12.5
 * ActivateCredential, §13.3 Import) written from the spec. swtpm tests prove that real TPMs agree.
 */
import assert from "node:assert/strict";
import { createHmac, type KeyObject } from "node:crypto";
import { newKeyPair } from "../../src/crypto/keygen.js";
import { TPM_ALG } from "../../src/tpm/constants.js";
import { Reader } from "../../src/tpm/marshal.js";
import { decodeTpm2bSensitive, encodeTpm2bPublic, hashOf, objectName } from "../../src/tpm/structures.js";
import type { RsaPublic, TpmtPublic } from "../../src/tpm/types.js";
import { parseAuthenticationKey } from "../../src/provisioning/authentication-key.js";
import { defaultRegistrationId } from "../../src/provisioning/registration-id.js";
import { encodeSasScope, formatSasToken, sasScope, stringToSign } from "../../src/provisioning/sas.js";
import { cfbDecrypt, eccEk, openOuterWrap, recoverSeed, rsaEk } from "../crypto/unwrap.js";

export interface SoftDevice {
  ek: TpmtPublic;
  srk: TpmtPublic;
  ekPriv: KeyObject;
  srkPriv: KeyObject;
  registrationId: string;
  /** the registration body of DPS TPM attestation */
  body(extra?: Record<string, unknown>): { registrationId: string; tpm: { endorsementKey: string; storageRootKey: string } };
  /** recovers the HMAC key from an authenticationKey (base64), as the TPM would */
  unwrap(authenticationKey: string): Buffer;
}

/** SRK template attributes (0x00030472): fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|decrypt. */
export const SRK_ATTRS = 0x00030472;

export function softSrk(): { pub: RsaPublic; priv: KeyObject } {
  const { publicKey, privateKey } = newKeyPair("rsa-2048");
  const pub: RsaPublic = {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: SRK_ATTRS,
    authPolicy: Buffer.alloc(0),
    parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
    unique: Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url"),
  };
  return { pub, priv: privateKey };
}

/** The TPM's side: ActivateCredential (EK, Name(SRK)) then Import (SRK, inner key); returns the HMAC key. */
export function unwrapAuthenticationKey(blob: Buffer, ek: TpmtPublic, ekPriv: KeyObject, srk: TpmtPublic, srkPriv: KeyObject): Buffer {
  const parts = parseAuthenticationKey(blob);
  const credSeed = recoverSeed(ek, ekPriv, parts.credentialSecret, "IDENTITY");
  const idObject = Buffer.concat([Buffer.from([0, parts.credentialBlob.integrityHMAC.length]), parts.credentialBlob.integrityHMAC, parts.credentialBlob.encIdentity]);
  const credential = new Reader(openOuterWrap(ek, credSeed, objectName(srk), idObject)).tpm2b("credential");
  const dupSeed = recoverSeed(srk, srkPriv, parts.inSymSeed, "DUPLICATE");
  const name = objectName(parts.public);
  const inner = cfbDecrypt(credential, openOuterWrap(srk, dupSeed, name, parts.duplicate));
  const r = new Reader(inner);
  const integrity = r.tpm2b("innerIntegrity");
  const sensitive = inner.subarray(r.offset);
  assert.deepEqual(hashOf(parts.public.nameAlg, sensitive, name), integrity, "inner integrity");
  const s = decodeTpm2bSensitive(sensitive);
  assert.deepEqual(hashOf(parts.public.nameAlg, s.seedValue, s.sensitive), parts.public.unique, "unique = H(seedValue ‖ key)");
  return Buffer.from(s.sensitive);
}

let sharedSrk: ReturnType<typeof softSrk> | undefined;

/** A device with a fresh EK; devices of one process share an SRK (RSA key generation is what costs). */
export function softDevice(o: { ek?: "rsa" | "ecc"; registrationId?: string } = {}): SoftDevice {
  const ek = o.ek === "ecc" ? eccEk() : rsaEk();
  const srk = (sharedSrk ??= softSrk());
  const registrationId = o.registrationId ?? defaultRegistrationId(ek.pub);
  return {
    ek: ek.pub,
    srk: srk.pub,
    ekPriv: ek.priv,
    srkPriv: srk.priv,
    registrationId,
    body: (extra = {}) => ({
      registrationId,
      tpm: { endorsementKey: encodeTpm2bPublic(ek.pub).toString("base64"), storageRootKey: encodeTpm2bPublic(srk.pub).toString("base64") },
      ...extra,
    }),
    unwrap: (authenticationKey) => unwrapAuthenticationKey(Buffer.from(authenticationKey, "base64"), ek.pub, ek.priv, srk.pub, srk.priv),
  };
}

/** A SAS token as the C SDK makes it (`%2f`), or the .NET SDK (`%2F`). */
export function sasToken(key: Buffer, idScope: string, registrationId: string, expiry: number, style: "c" | "dotnet" = "c"): string {
  const sr = encodeSasScope(sasScope(idScope, registrationId), style);
  return formatSasToken(sr, createHmac("sha256", key).update(stringToSign(sr, expiry)).digest(), expiry);
}
