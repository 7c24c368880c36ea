import { Command, Option } from "commander";
import { TpmTrustError, isTpmTrustError } from "../../errors.js";
import { readInput, hexArg } from "../files.js";
import { action, printJson } from "../run.js";
import { parseAttestInput, parseKeyInput, parsePcrsInput, type KeyInput } from "../../verify/inputs.js";
import { decodeTpmtSignature } from "../../tpm/structures.js";
import { signatureFromRaw, RAW_SIGNATURE_SCHEMES } from "../../crypto/signature.js";
import { verifyQuote } from "../../verify/quote.js";
import { verifyCertify } from "../../verify/certify.js";
import { describeAttest, inspect, jsonView } from "../../tpm/describe.js";
import { TPM_ST } from "../../tpm/constants.js";
import type { TpmsAttest, TpmtSignature } from "../../tpm/types.js";
import { verifyAkCertificate } from "../ak-chain.js";
import { verifyEventLogAgainstQuote } from "../../verify/quote-eventlog.js";
import { verifyImaAgainstPcrs } from "../../verify/ima/index.js";

interface CommonOpts {
  ak: string;
  attest: string;
  signature: string;
  signatureScheme?: string;
  nonce?: string;
  json?: boolean;
  akChain?: string[];
  roots?: string;
  at?: string;
}

function commonOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--ak <file>", "attestation key: TPM2B_PUBLIC, TPMT_PUBLIC, SPKI (PEM/DER) or X.509 certificate")
    .requiredOption("--attest <file>", "TPMS_ATTEST or TPM2B_ATTEST")
    .requiredOption("--signature <file>", "TPMT_SIGNATURE, or a raw signature with --signature-scheme")
    .addOption(new Option("--signature-scheme <scheme>", "scheme of a raw signature").choices(RAW_SIGNATURE_SCHEMES))
    .option("--nonce <hex>", "expected qualifying data (extraData)")
    .option("--ak-chain <files...>", "intermediate certificates for an X.509 AK")
    .option("--roots <file|dir>", "trusted roots for an X.509 AK")
    .option("--at <iso8601>", "validate the AK certificate chain at this time (default: now)")
    .option("--json", "print one JSON object");
}

interface Loaded {
  ak: KeyInput;
  attestBytes: Buffer;
  attest: TpmsAttest;
  signature: TpmtSignature;
  nonce?: Buffer;
}

function load(o: CommonOpts): Loaded {
  const ak = parseKeyInput(readInput(o.ak, "--ak"), "--ak");
  const raw = readInput(o.attest, "--attest");
  const { format, attest } = parseAttestInput(raw);
  const attestBytes = format === "TPM2B_ATTEST" ? raw.subarray(2) : raw;
  const sigBytes = readInput(o.signature, "--signature");
  const signature = o.signatureScheme ? signatureFromRaw(o.signatureScheme, sigBytes, ak.key) : decodeTpmtSignature(sigBytes);
  return { ak, attestBytes, attest, signature, nonce: o.nonce === undefined ? undefined : hexArg(o.nonce, "--nonce") };
}

function attestFacts(a: TpmsAttest): Record<string, unknown> {
  const d = describeAttest(a);
  return { attestType: d.typeName, clockInfo: d.clockInfo, firmwareVersion: d.firmwareVersion, qualifiedSigner: d.qualifiedSigner, extraData: d.extraData };
}

/** Runs a verification and reports it: exit 0 verified, 1 rejected, 2 unusable input. */
async function report(o: { json?: boolean }, run: () => Promise<Record<string, unknown>> | Record<string, unknown>, partial: () => Record<string, unknown>): Promise<number> {
  try {
    const facts = await run();
    if (o.json) printJson({ verified: true, code: "OK", message: "verified", ...facts });
    else process.stdout.write("verified\n");
    return 0;
  } catch (e) {
    if (!isTpmTrustError(e) || !o.json) throw e;
    printJson({ verified: false, code: e.code, message: e.message, ...(e.details ? { details: jsonView(e.details) } : {}), ...partial() });
    return e.code.startsWith("ERR_PARSE_") || e.code === "ERR_USAGE" || e.code === "ERR_IO" ? 2 : 1;
  }
}

export function register(program: Command): void {
  const verify = program.command("verify").description("verify TPM evidence offline (exit 0 verified, 1 rejected, 2 unusable input)");

  commonOptions(verify.command("quote").description("verify a TPM2_Quote"))
    .option("--pcrs <file>", "PCR values: tpm2_pcrread YAML, tpm2_quote -o file, or JSON {\"sha256\":{\"0\":\"hex\"}}")
    .option("--eventlog <file>", "TCG event log to replay against the quoted PCRs")
    .option("--ima <file>", "IMA measurement list (binary or ASCII) that must replay to the quoted PCR 10")
    .action(
      action(async (o: CommonOpts & { pcrs?: string; eventlog?: string; ima?: string }) => {
        let loaded: Loaded | undefined;
        return report(
          o,
          async () => {
            loaded = load(o);
            const chain = loaded.ak.certificate ? await verifyAkCertificate(loaded.ak.certificate, o) : undefined;
            const sel = loaded.attest.type === TPM_ST.ATTEST_QUOTE ? loaded.attest.attested.pcrSelect : undefined;
            const pcrs = o.pcrs ? parsePcrsInput(readInput(o.pcrs, "--pcrs"), sel) : undefined;
            const facts = verifyQuote({ ...loaded, ak: loaded.ak.public ?? loaded.ak.key, pcrs });
            const out: Record<string, unknown> = { ...attestFacts(loaded.attest), pcrSelect: facts.pcrSelect, pcrDigest: facts.pcrDigest.toString("hex") };
            if (facts.verifiedPcrs) out.pcrs = jsonView(facts.verifiedPcrs);
            if (chain) out.akCertificate = chain;
            if (o.eventlog) out.eventlog = verifyEventLogAgainstQuote(readInput(o.eventlog, "--eventlog"), loaded.attest, loaded.signature, facts.verifiedPcrs);
            if (o.ima) {
              if (!facts.verifiedPcrs) throw new TpmTrustError("ERR_USAGE", "--ima needs --pcrs: the quoted PCR 10 values the list must replay to");
              const ima = verifyImaAgainstPcrs(readInput(o.ima, "--ima"), facts.verifiedPcrs);
              out.ima = {
                entries: ima.list.entries.length,
                covered: ima.covered,
                pcr10: jsonView(ima.pcr10),
                workarounds: ima.workarounds,
                ...(ima.bootAggregate ? { bootAggregate: ima.bootAggregate } : {}),
              };
            }
            return out;
          },
          () => (loaded ? attestFacts(loaded.attest) : {}),
        );
      }),
    );

  commonOptions(verify.command("certify").description("verify a TPM2_Certify or TPM2_CertifyCreation of a key"))
    .requiredOption("--key <file>", "the certified key: TPM2B_PUBLIC or TPMT_PUBLIC (its Name is what was certified)")
    .option("--allow-restricted", "accept a restricted certified key (e.g. another AK)")
    .action(
      action(async (o: CommonOpts & { key: string; allowRestricted?: boolean }) => {
        let loaded: Loaded | undefined;
        return report(
          o,
          async () => {
            loaded = load(o);
            const key = parseKeyInput(readInput(o.key, "--key"), "--key");
            if (!key.public) throw new TpmTrustError("ERR_USAGE", "--key must be a TPM2B_PUBLIC or TPMT_PUBLIC: the certified Name is computed from the public area");
            const chain = loaded.ak.certificate ? await verifyAkCertificate(loaded.ak.certificate, o) : undefined;
            const facts = verifyCertify({ ...loaded, ak: loaded.ak.public ?? loaded.ak.key, key: key.public, allowRestricted: o.allowRestricted });
            return { ...attestFacts(loaded.attest), certifiedName: facts.certifiedName.toString("hex"), attributes: facts.attributes, ...(chain ? { akCertificate: chain } : {}) };
          },
          () => (loaded ? attestFacts(loaded.attest) : {}),
        );
      }),
    );

  program
    .command("tpm")
    .description("TPM structure tools")
    .command("inspect <file>")
    .description("print a TPM structure as JSON (type auto-detected where unambiguous)")
    .option("--type <type>", "structure type, e.g. TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE")
    .action(
      action((file: string, o: { type?: string }) => {
        const r = inspect(readInput(file, "FILE"), o.type);
        printJson({ type: r.type, value: r.value });
      }),
    );
}
