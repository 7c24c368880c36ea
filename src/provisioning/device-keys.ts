/**
 * Device keys at rest. The provisioning service never stores a device's HMAC key in the clear: it
 * keeps it wrapped with AES-256-GCM under the service's provisioning master key (a file outside the
 * database, see master-key.ts), with the registration id and the Names of the EK and SRK it was
 * issued to as associated data. A database dump alone therefore forges no SAS token, and a key
 * issued to one TPM never verifies a token that claims another EK or SRK.
 *
 * Wrapped form: 01 ‖ master key id (8) ‖ IV (12) ‖ GCM tag (16) ‖ ciphertext.
 *
 * The key a challenge hands out is not stored at all: it is derived from the master key, the
 * binding and the challenge period, so any number of challenges for the same TPM give the same
 * key and a challenge for another SRK cannot replace the key a device is about to use.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import { TpmTrustError } from "../errors.js";

const VERSION = 1;
const ID_BYTES = 8;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER = 1 + ID_BYTES + IV_BYTES + TAG_BYTES;

/** What a device key is bound to. */
export interface KeyBinding {
  registrationId: string;
  ekName: Uint8Array;
  srkName: Uint8Array;
}

function aad(b: KeyBinding): Buffer {
  const id = Buffer.from(b.registrationId.toLowerCase(), "utf8");
  const part = (x: Uint8Array) => Buffer.concat([Buffer.from([x.length >> 8, x.length & 0xff]), x]);
  return Buffer.concat([Buffer.from("tpmtrust dps device key\0"), part(id), part(b.ekName), part(b.srkName)]);
}

export class DeviceKeyWrapper {
  /** hex id of the master key (not secret): tells which key wrapped a stored device key */
  readonly keyId: string;
  private readonly id: Buffer;
  private readonly challengeSecret: Buffer;

  constructor(private readonly masterKey: Buffer) {
    if (masterKey.length !== 32) throw new TpmTrustError("ERR_USAGE", `the provisioning master key must have 32 bytes, not ${masterKey.length}`);
    this.id = createHash("sha256").update("tpmtrust provisioning key id\0").update(masterKey).digest().subarray(0, ID_BYTES);
    this.keyId = this.id.toString("hex");
    this.challengeSecret = createHmac("sha256", masterKey).update("tpmtrust dps challenge keys\0").digest();
  }

  /** The device key challenges for `binding` hand out during challenge period `period` (32 bytes). */
  challengeKey(binding: KeyBinding, period: number): Buffer {
    const p = Buffer.alloc(8);
    p.writeBigUInt64BE(BigInt(period));
    return createHmac("sha256", this.challengeSecret).update(aad(binding)).update(p).digest();
  }

  wrap(key: Uint8Array, binding: KeyBinding): Buffer {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv("aes-256-gcm", this.masterKey, iv);
    c.setAAD(aad(binding));
    const ct = Buffer.concat([c.update(key), c.final()]);
    return Buffer.concat([Buffer.of(VERSION), this.id, iv, c.getAuthTag(), ct]);
  }

  /**
   * The device key, or undefined when it was issued for another registration, EK or SRK. A key
   * wrapped under another master key is a configuration error (every service instance needs the
   * same key): ERR_INTERNAL naming both key ids.
   */
  unwrap(wrapped: Uint8Array, binding: KeyBinding): Buffer | undefined {
    const w = Buffer.from(wrapped);
    if (w.length <= HEADER || w[0] !== VERSION) throw new TpmTrustError("ERR_INTERNAL", "a stored device key has an unknown format");
    const id = w.subarray(1, 1 + ID_BYTES);
    if (!id.equals(this.id)) {
      throw new TpmTrustError(
        "ERR_INTERNAL",
        `a device key was wrapped under provisioning master key ${id.toString("hex")}, but this instance has ${this.keyId}: give every instance the same key file`,
      );
    }
    const d = createDecipheriv("aes-256-gcm", this.masterKey, w.subarray(1 + ID_BYTES, 1 + ID_BYTES + IV_BYTES));
    d.setAAD(aad(binding));
    d.setAuthTag(w.subarray(1 + ID_BYTES + IV_BYTES, HEADER));
    try {
      return Buffer.concat([d.update(w.subarray(HEADER)), d.final()]);
    } catch {
      return undefined;
    }
  }
}
