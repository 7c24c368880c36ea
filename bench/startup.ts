/**
 * One-shot CLI start-up: `tpmtrust verify quote`, `verify certify`, `eventlog replay` and
 * `--version`, each run as a whole process through bin/tpmtrust.js, against `node -e 0` measured
 * alternately in the same run. Operators script these per file, as they script tpm2_checkquote, so
 * the process is the unit. They run an installed package (bin/ and dist/, no src/: the launcher
 * runs dist/ without looking for edited sources), which the bench lays out in a scratch folder from
 * a fresh build; a development checkout also pays for bin/tpmtrust.js's walk of src/.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, createSign } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { median, type BenchFigure } from "./lib.js";
import { AK_ATTRS, tpmtFromKey } from "./quote.js";
import { newKeyPair } from "../src/crypto/keygen.js";
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "../src/tpm/constants.js";
import { encodeTpmsAttest, encodeTpmtPublic, encodeTpmtSignature, objectName } from "../src/tpm/structures.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNS = 9;
const KEY_ATTRS = 0x00040072; // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) t = Math.max(t, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs);
  return t;
}

/** bin/tpmtrust.js runs dist/ only when it is newer than src/: build it, or the figures would time tsx. */
function ensureBuild(): void {
  let built = -1;
  try {
    built = statSync(join(ROOT, "dist/.built")).mtimeMs;
  } catch {
    // no build yet
  }
  if (built >= newest(join(ROOT, "src"))) return;
  process.stderr.write("bench: startup: building dist/ (npm run build)\n");
  execFileSync(process.execPath, [join(ROOT, "scripts/build.mjs")], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
}

/** A TPM2_Certify of an ECC signing key by an ECC AK, made in software in the TPM wire formats. */
function certifyFiles(dir: string): string[] {
  const akKeys = newKeyPair("ecdsa-p256");
  const ak = tpmtFromKey(akKeys.publicKey, AK_ATTRS);
  const key = tpmtFromKey(newKeyPair("ecdsa-p256").publicKey, KEY_ATTRS);
  const nonce = createHash("sha256").update("startup").digest();
  const attest = encodeTpmsAttest({
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST.ATTEST_CERTIFY,
    qualifiedSigner: objectName(ak),
    extraData: nonce,
    clockInfo: { clock: 1n, resetCount: 0, restartCount: 0, safe: true },
    firmwareVersion: 0n,
    attested: { name: objectName(key), qualifiedName: objectName(key) },
  });
  const raw = createSign("sha256").update(attest).sign({ key: akKeys.privateKey, dsaEncoding: "ieee-p1363" });
  const files = { ak: encodeTpmtPublic(ak), key: encodeTpmtPublic(key), attest, sig: encodeTpmtSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: raw.subarray(0, 32), s: raw.subarray(32) }) };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, `certify-${name}`), bytes);
  const f = (name: string) => join(dir, `certify-${name}`);
  return ["verify", "certify", "--ak", f("ak"), "--attest", f("attest"), "--signature", f("sig"), "--key", f("key"), "--nonce", nonce.toString("hex")];
}

/** Wall time of one whole process, in ms; a non-zero exit is a broken benchmark, not a figure. */
function wall(args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`bench: startup: node ${args.join(" ")} exited ${r.status}: ${r.stderr.toString().slice(0, 500)}`);
  return ms;
}

/** The package as npm installs it: package.json, bin/ and dist/ (what "files" ships for the CLI), its dependencies. */
function installedPackage(dir: string): string {
  const pkg = join(dir, "package");
  for (const p of ["package.json", "bin", "dist"]) cpSync(join(ROOT, p), join(pkg, p), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
  return join(pkg, "bin/tpmtrust.js");
}

export async function run(): Promise<BenchFigure[]> {
  ensureBuild();
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-startup-"));
  try {
    const BIN = installedPackage(dir);
    const fx = (p: string) => join(ROOT, "test/fixtures", p);
    const commands: Record<string, string[]> = {
      "tpmtrust verify quote (TPM2_Quote, PEM AK, tpm2_quote PCR file)": [
        "verify", "quote", "--ak", fx("quotes/swtpm-pcr16-ak.pem"), "--ak-trusted", "--attest", fx("quotes/swtpm-pcr16-quote.bin"),
        "--signature", fx("quotes/swtpm-pcr16-sig.bin"), "--nonce", Buffer.from("Ai5M5SjYjnkyv4P7itH1").toString("hex"), "--pcrs", fx("quotes/swtpm-pcr16-pcr.bin"),
      ],
      "tpmtrust verify certify (TPM2_Certify, P-256 AK and key)": certifyFiles(dir),
      "tpmtrust eventlog replay (RHEL 8 GCE log, 2 banks)": ["eventlog", "replay", fx("eventlogs/rhel8-gce-uefi.bin")],
      "tpmtrust --version": ["--version"],
    };
    const baseline: number[] = [];
    const runs: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
    for (const args of Object.values(commands)) wall([BIN, ...args]); // warm the file cache; fail before measuring
    for (let i = 0; i < RUNS; i++) {
      baseline.push(wall(["-e", "0"]));
      for (const [name, args] of Object.entries(commands)) runs[name].push(wall([BIN, ...args]));
    }
    const b = median(baseline);
    return Object.entries(runs).map(([name, r]) => ({
      name: `${name}: whole process, wall`,
      unit: "ms",
      median: median(r),
      runs: r,
      baseline: { name: "node -e 0 (wall)", median: b },
      ratio: median(r) / b,
      goal: "ratio <= 1.5",
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
