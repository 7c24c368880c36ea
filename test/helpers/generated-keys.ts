/**
 * A deterministic stand-in for a rare hang: on Node 20 a JWK export of a KeyObject that
 * generateKeyPairSync returned can deadlock the process (src/crypto/keygen.ts). While this is on,
 * such an export throws instead, so a test shows that the code under test never does it.
 */
import { createRequire, syncBuiltinESMExports } from "node:module";
import { KeyObject } from "node:crypto";

type Export = (this: KeyObject, o?: { format?: string }) => unknown;

/** Until the returned function is called, a JWK export of a generated KeyObject throws. */
export function refuseJwkOfGeneratedKeys(): () => void {
  // the CommonJS module object: what ESM imports of node:crypto see after syncBuiltinESMExports
  const crypto = createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto");
  const generate = crypto.generateKeyPairSync;
  const generated = new WeakSet<KeyObject>();
  const sample = generate("ec", { namedCurve: "P-256" });
  const protos = [Object.getPrototypeOf(sample.publicKey), Object.getPrototypeOf(sample.privateKey)] as { export: Export }[];
  const originals = protos.map((p) => p.export);
  crypto.generateKeyPairSync = ((...args: Parameters<typeof generate>) => {
    const pair = generate(...args);
    for (const k of [pair.publicKey, pair.privateKey]) if (k instanceof KeyObject) generated.add(k);
    return pair;
  }) as typeof generate;
  protos.forEach((p, i) => {
    p.export = function (o) {
      if (o?.format === "jwk" && generated.has(this)) throw new Error("a JWK export of a KeyObject from generateKeyPairSync");
      return originals[i].call(this, o);
    };
  });
  syncBuiltinESMExports();
  return () => {
    crypto.generateKeyPairSync = generate;
    protos.forEach((p, i) => (p.export = originals[i]));
    syncBuiltinESMExports();
  };
}
