import { Command, Option } from "commander";
import { TpmTrustError, exitCodeForCode, isTpmTrustError } from "../../errors.js";
import { readInput, hexArg } from "../files.js";
import { action, printJson } from "../run.js";
import { writeStdout } from "../stdout.js";
import { parseAttestInput, parseKeyInput, parsePcrsInput, type KeyInput } from "../../verify/inputs.js";
import { decodeTpmtSignature } from "../../tpm/structures.js";
import { signatureFromRaw, RAW_SIGNATURE_SCHEMES } from "../../crypto/signature.js";
import { verifyCertify } from "../../verify/certify.js";
import { describeAttest, inspect, jsonView } from "../../tpm/describe.js";
import { TPM_GENERATED_VALUE } from "../../tpm/constants.js";
import type { QuoteAttest, TpmsAttest, TpmsPcrSelection, TpmtSignature } from "../../tpm/types.js";
import { verifyQuoteSet, type AttestationKey } from "../../verify/quote-set.js";
import type { AttestationFacts } from "../../verify/attestation.js";
import { OID } from "../../verify/ek/oids.js";

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

// The X.509, IMA and event-log stacks load only when an X.509 AK, --ima or --eventlog asks for them: a one-shot
// `verify quote` of a TPM-format AK starts in about the time of `node -e 0` (npm run bench -- startup).
async function akCertificateChain(...a: Parameters<typeof import("../ak-chain.js").verifyAkCertificate>) {
  return (await import("../ak-chain.js")).verifyAkCertificate(...a);
}

interface Loaded {
  ak: KeyInput;
  attestBytes: Buffer;
  attest: TpmsAttest;
  signature: TpmtSignature;
  nonce?: Buffer;
}

/** The signed bytes of --attest: TPMS_ATTEST, or the body of a TPM2B_ATTEST (its size prefix matching, its magic after it). */
function signedBytes(raw: Buffer): Buffer {
  return raw.length >= 6 && raw.readUInt16BE(0) === raw.length - 2 && raw.readUInt32BE(2) === TPM_GENERATED_VALUE ? raw.subarray(2) : raw;
}

/**
 * The AK as the quote check takes it: its TPMT_PUBLIC (attributes checked), a certificate whose
 * chain to --roots validated with EKU 2.23.133.8.3 (attributes vouched for by its CA), or a bare
 * key with --ak-trusted (attributes unchecked, and said so); a bare key otherwise is refused.
 */
async function attestationKey(ak: KeyInput, o: CommonOpts & { akTrusted?: boolean }): Promise<{ key: AttestationKey; chain?: Record<string, unknown> }> {
  if (ak.public) return { key: ak.public };
  const chain = ak.certificate ? await akCertificateChain(ak.certificate, o) : undefined;
  if (chain?.chainValidated && ak.certificate?.keyUsage?.includes(OID.aikCertificate)) return { key: { key: ak.key, vouchedBy: "ak-certificate" }, chain };
  if (o.akTrusted) return { key: { key: ak.key, vouchedBy: "caller" }, ...(chain ? { chain } : {}) };
  throw new TpmTrustError(
    "ERR_AK_ATTRIBUTES_UNKNOWN",
    `--ak is ${ak.format === "X509" ? "a certificate without a validated chain to --roots and EKU 2.23.133.8.3" : "a bare public key"}: give the AK's TPM2B_PUBLIC/TPMT_PUBLIC, an AK certificate with --roots, or --ak-trusted to skip the restricted and fixedTPM checks`,
    { format: ak.format },
  );
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
    else writeStdout(`verified\n${Array.isArray(facts.unchecked) ? `unchecked: ${JSON.stringify(facts.unchecked)}\n` : ""}`);
    return 0;
  } catch (e) {
    if (!isTpmTrustError(e) || !o.json) throw e;
    printJson({ verified: false, code: e.code, message: e.message, ...(e.details ? { details: jsonView(e.details) } : {}), ...partial() });
    return exitCodeForCode(e.code);
  }
}

export function register(program: Command): void {
  const verify = program.command("verify").description("verify TPM evidence offline (exit 0 verified, 1 rejected, 2 unusable input)");

  commonOptions(verify.command("quote").description("verify a TPM2_Quote"))
    .option("--pcrs <file>", "PCR values: tpm2_pcrread YAML, tpm2_quote -o file, or JSON {\"sha256\":{\"0\":\"hex\"}}")
    .option("--eventlog <file>", "TCG event log to replay against the quoted PCRs")
    .option("--ima <file>", "IMA measurement list (binary or ASCII) that must replay to the quoted PCR 10")
    .option("--ak-trusted", "accept --ak as a bare key (SPKI, PEM/DER, or a certificate without --roots): the AK's restricted and fixedTPM attributes are then not checked, and the output says so")
    .action(
      action(async (o: CommonOpts & { pcrs?: string; eventlog?: string; ima?: string; akTrusted?: boolean }) => {
        let verifiedAttest: TpmsAttest | undefined;
        return report(
          o,
          async () => {
            // verify, then parse: the attest is decoded only after its signature verified
            const akInput = parseKeyInput(readInput(o.ak, "--ak"), "--ak");
            const attestBytes = signedBytes(readInput(o.attest, "--attest"));
            const sigBytes = readInput(o.signature, "--signature");
            const signature = o.signatureScheme ? signatureFromRaw(o.signatureScheme, sigBytes, akInput.key) : decodeTpmtSignature(sigBytes);
            const nonce = o.nonce === undefined ? undefined : hexArg(o.nonce, "--nonce");
            const pcrFile = o.pcrs ? readInput(o.pcrs, "--pcrs") : undefined;
            const eventLog = o.eventlog ? readInput(o.eventlog, "--eventlog") : undefined;
            if (o.ima && !pcrFile) throw new TpmTrustError("ERR_USAGE", "--ima needs --pcrs: the quoted PCR 10 values the list must replay to");
            const ima = o.ima ? { list: readInput(o.ima, "--ima") } : undefined;
            const { key, chain } = await attestationKey(akInput, o);
            const evidence = { quotes: [{ attestBytes, signature }], ...(nonce ? { nonce } : {}), ...(pcrFile ? { pcrs: (sel: TpmsPcrSelection[]) => parsePcrsInput(pcrFile, sel) } : {}) };
            // the event-log and IMA code loads only for --eventlog or --ima
            const facts: AttestationFacts =
              eventLog || ima ? (await import("../../verify/attestation.js")).verifyAttestation({ ...evidence, ...(eventLog ? { eventLog } : {}), ...(ima ? { ima } : {}) }, key, "quoted") : verifyQuoteSet(evidence, key, "quoted");
            verifiedAttest = facts.attests[0];
            const verifiedPcrs = pcrFile ? facts.pcrs : undefined;
            const out: Record<string, unknown> = { ...attestFacts(facts.attests[0]), pcrSelect: facts.pcrSelect, pcrDigest: (facts.attests[0] as QuoteAttest).attested.pcrDigest.toString("hex") };
            if (verifiedPcrs) out.pcrs = jsonView(verifiedPcrs);
            if (chain) out.akCertificate = chain;
            if (facts.unchecked.length) out.unchecked = facts.unchecked;
            if (facts.eventLog) out.eventlog = facts.eventLog.log;
            if (facts.ima) {
              const ima = facts.ima;
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
          () => (verifiedAttest ? attestFacts(verifiedAttest) : {}),
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
            const chain = loaded.ak.certificate ? await akCertificateChain(loaded.ak.certificate, o) : undefined;
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
