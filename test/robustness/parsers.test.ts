/**
 * Property tests over every parser of untrusted input (table in parsers.ts): seeds parse, and random
 * or mutated inputs give a result or a typed TpmTrustError, never another exception. Bounded for CI;
 * `npm run fuzz` runs the same table for longer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TpmTrustError } from "../../src/errors.js";
import { parseKeyInput } from "../../src/verify/inputs.js";
import { breaksContract, FIXTURES, inputsFor, PARSERS } from "./parsers.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

for (const p of PARSERS) {
  test(`${p.name}: seeds parse; random and mutated input gives only typed errors`, () => {
    for (const s of p.seeds()) (p.parse as (x: unknown) => unknown)(s);
    fc.assert(
      fc.property(inputsFor(p), (input) => {
        const bad = breaksContract(p, input);
        if (bad !== undefined) throw new Error(`untyped failure: ${(bad as Error)?.stack ?? String(bad)}`);
      }),
      { numRuns: RUNS },
    );
  });
}

test("the table covers the decoder of every TPM structure", () => {
  assert.ok(PARSERS.filter((p) => p.name.startsWith("tpm decode")).length >= 15);
});

test("regressions found by npm run fuzz give typed errors", () => {
  const badSpki = readFileSync(join(FIXTURES, "fuzz", "cert-bad-spki.der"));
  assert.throws(() => parseKeyInput(badSpki, "--ak"), (e: TpmTrustError) => e.code === "ERR_PARSE_CERT" && /public key could not be parsed/.test(e.message));
});
