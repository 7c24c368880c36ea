/**
 * Reference artefacts made by Debian's tpm2-tools against a fresh swtpm (the independent side of
 * every interoperability test): EKs and EK certificates, AKs, quotes, certify statements, credential
 * blobs and keys with and without fixedTPM. Files land in `dir`; paths are returned.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSwtpm, type Swtpm } from "./swtpm.js";
import { tpm2 } from "./tpm2tools.js";

export const QUOTE_NONCE = createHash("sha256").update("tpmtrust-quote-nonce").digest();
/** tpm2_certify (tools 5.4) cannot set qualifying data; it always sends these four bytes. */
export const TOOLS_CERTIFY_NONCE = Buffer.from("00ff55aa", "hex");
export const QUOTE_PCRS = [0, 1, 2, 3, 16];
export const CREDENTIAL_SECRET = Buffer.from("tpmtrust-credential-secret-32byt");

export interface Artefacts {
  dir: string;
  tpm: Swtpm;
  path: (name: string) => string;
  read: (name: string) => Buffer;
  /** sha256 PCR values the quotes cover, as tpm2_pcrread reported them */
  pcrs: Record<number, Buffer>;
  close: () => Promise<void>;
}

/**
 * Makes: ek-{rsa,ecc,ecc384}.pub (+ .name by tpm2_readpublic), ek-rsa-cert.der, ek-ecc384-cert.der,
 * ak-{rsa,ecc,rsa2}.{pub,name,pem}, quote-{rsa,ecc}.{msg,sig,plain,pcrs}, pcrs.yaml,
 * key-{fixed,dup}.pub, certify-{fixed,dup}.by-{rsa,ecc}.{attest,sig}, cred-{rsa,ecc}.blob.
 */
export async function makeArtefacts(): Promise<Artefacts> {
  const tpm = await startSwtpm({ ekCerts: true });
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-artefacts-"));
  const p = (n: string) => join(dir, n);
  const t = (tool: string, args: string[]) => tpm2(tpm, tool, args, { cwd: dir });
  try {
    for (const [alg, name] of [["rsa", "ek-rsa"], ["ecc", "ek-ecc"], ["ecc384", "ek-ecc384"]]) {
      await t("tpm2_createek", ["-G", alg, "-c", p(`${name}.ctx`), "-u", p(`${name}.pub`)]);
      await t("tpm2_readpublic", ["-c", p(`${name}.ctx`), "-n", p(`${name}.name`), "-f", "pem", "-o", p(`${name}.pem`)]);
    }
    await t("tpm2_nvread", ["-C", "o", "-o", p("ek-rsa-cert.der"), "0x01c00002"]);
    await t("tpm2_nvread", ["-C", "o", "-o", p("ek-ecc384-cert.der"), "0x01c00016"]);
    writeFileSync(p("ek-ca-root.pem"), tpm.ca!.rootPem);
    writeFileSync(p("ek-ca-intermediate.pem"), tpm.ca!.intermediatePem);

    for (const [name, ek, alg, scheme] of [
      ["ak-rsa", "ek-rsa", "rsa", "rsassa"],
      ["ak-ecc", "ek-rsa", "ecc", "ecdsa"],
      ["ak-rsa2", "ek-rsa", "rsa", "rsassa"],
    ]) {
      await t("tpm2_createak", ["-C", p(`${ek}.ctx`), "-c", p(`${name}.ctx`), "-G", alg, "-g", "sha256", "-s", scheme, "-u", p(`${name}.pub`), "-n", p(`${name}.name`), "-r", p(`${name}.priv`)]);
      await t("tpm2_readpublic", ["-c", p(`${name}.ctx`), "-f", "pem", "-o", p(`${name}.pem`)]);
    }

    for (const [i, text] of [[0, "firmware"], [16, "debug"], [3, "option-rom"]] as const) {
      await t("tpm2_pcrextend", [`${i}:sha256=${createHash("sha256").update(text).digest("hex")}`]);
    }
    const pcrList = `sha256:${QUOTE_PCRS.join(",")}`;
    await t("tpm2_pcrread", [pcrList, "-o", p("pcrs.values.bin")]);
    writeFileSync(p("pcrs.yaml"), await t("tpm2_pcrread", [pcrList]));
    for (const k of ["rsa", "ecc"]) {
      await t("tpm2_quote", ["-c", p(`ak-${k}.ctx`), "-l", pcrList, "-q", QUOTE_NONCE.toString("hex"), "-g", "sha256", "-m", p(`quote-${k}.msg`), "-s", p(`quote-${k}.sig`), "-o", p(`quote-${k}.pcrs`)]);
      // the same quote's signature as raw bytes (RSA) or DER (ECDSA): tpm2_quote -f plain
      await t("tpm2_quote", ["-c", p(`ak-${k}.ctx`), "-l", pcrList, "-q", QUOTE_NONCE.toString("hex"), "-g", "sha256", "-m", p(`quote-${k}.plain.msg`), "-s", p(`quote-${k}.plain`), "-f", "plain"]);
    }

    // Application keys under an SRK: one bound to the TPM, one duplicable (policy = PolicyCommandCode(Duplicate)).
    await t("tpm2_createprimary", ["-C", "o", "-G", "rsa2048", "-c", p("srk.ctx")]);
    await tpm2(tpm, "tpm2_startauthsession", ["-S", p("trial.ctx")], { cwd: dir, flush: false });
    await tpm2(tpm, "tpm2_policycommandcode", ["-S", p("trial.ctx"), "-L", p("dup.policy"), "TPM2_CC_Duplicate"], { cwd: dir, flush: false });
    await t("tpm2_flushcontext", [p("trial.ctx")]);
    await t("tpm2_create", ["-C", p("srk.ctx"), "-G", "ecc", "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign", "-u", p("key-fixed.pub"), "-r", p("key-fixed.priv")]);
    await t("tpm2_create", ["-C", p("srk.ctx"), "-G", "ecc", "-a", "sensitivedataorigin|userwithauth|sign", "-L", p("dup.policy"), "-u", p("key-dup.pub"), "-r", p("key-dup.priv")]);
    for (const key of ["fixed", "dup"]) {
      for (const ak of ["rsa", "ecc"]) {
        // the saved context reloads after the flush, so only the key and the AK are loaded for certify
        await t("tpm2_load", ["-C", p("srk.ctx"), "-u", p(`key-${key}.pub`), "-r", p(`key-${key}.priv`), "-c", p(`key-${key}.ctx`)]);
        await t("tpm2_certify", ["-c", p(`key-${key}.ctx`), "-C", p(`ak-${ak}.ctx`), "-g", "sha256", "-o", p(`certify-${key}.by-${ak}.attest`), "-s", p(`certify-${key}.by-${ak}.sig`)]);
      }
    }

    for (const k of ["rsa", "ecc"]) {
      writeFileSync(p("secret.bin"), CREDENTIAL_SECRET);
      const name = readFileSync(p("ak-rsa.name")).toString("hex");
      await t("tpm2_makecredential", ["-T", "none", "-u", p(`ek-${k}.pub`), "-s", p("secret.bin"), "-n", name, "-o", p(`cred-${k}.blob`)]);
    }
  } catch (e) {
    await tpm.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const values = readFileSync(p("pcrs.values.bin"));
  const pcrs: Record<number, Buffer> = {};
  QUOTE_PCRS.forEach((pcr, i) => (pcrs[pcr] = values.subarray(i * 32, i * 32 + 32)));
  return {
    dir,
    tpm,
    path: p,
    read: (n) => readFileSync(p(n)),
    pcrs,
    close: async () => {
      await tpm.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

