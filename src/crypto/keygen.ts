/**
 * New key pairs. They come out of the generator as DER and are imported again, so no KeyObject
 * shares its key with the generation job: on Node 20 a KeyObject straight from generateKeyPairSync
 * holds the same key (and key lock) as the job, and when the garbage collector frees that job while
 * the key is being exported to JWK (the export holds the lock while it allocates), the process
 * deadlocks on the lock. Seen in a gdb backtrace of a hung fleet seeding (~200,000 keys).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";

export type KeyPairAlg = "ecdsa-p256" | "rsa-2048";

export function newKeyPair(alg: KeyPairAlg): { privateKey: KeyObject; publicKey: KeyObject } {
  const publicKeyEncoding = { type: "spki", format: "der" } as const;
  const privateKeyEncoding = { type: "pkcs8", format: "der" } as const;
  const k =
    alg === "ecdsa-p256"
      ? generateKeyPairSync("ec", { namedCurve: "P-256", publicKeyEncoding, privateKeyEncoding })
      : generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding });
  return { privateKey: createPrivateKey({ key: k.privateKey, format: "der", type: "pkcs8" }), publicKey: createPublicKey({ key: k.publicKey, format: "der", type: "spki" }) };
}
