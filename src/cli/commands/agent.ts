import { join } from "node:path";
import { type Command, Option } from "commander";
import pino, { type Logger } from "pino";
import { activate, attest, DEFAULT_EVENTLOG, DEFAULT_IMA_LIST, DEFAULT_STATE_DIR, EK_ALG_KINDS, identify, readState, run, ServiceClient, tokenPath, withTpm } from "../../agent/index.js";
import { doctor } from "../../agent/doctor.js";
import type { OffChipOptions } from "../../agent/offchip.js";
import type { EkChoice } from "../../agent/tpm.js";
import { TpmTrustError } from "../../errors.js";
import { describeRc } from "../../tpm/rc.js";
import { TPM_SPEC_HELP } from "../../tpm/transport/index.js";
import { loadCertificate } from "../../verify/ek/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";

interface Common {
  tpm: string;
  server?: string;
  caCert?: string;
  stateDir: string;
  json?: boolean;
}

/** Logs go to stderr (fd 2), so stdout stays data (host.json, verdicts, tokens). */
function logger(level: string): Logger {
  return pino({ name: "tpmtrust-agent", level: process.env.TPMTRUST_LOG_LEVEL ?? level }, pino.destination(2));
}

function service(o: Common, fallback?: string): ServiceClient {
  const url = o.server ?? fallback;
  if (!url) throw new TpmTrustError("ERR_USAGE", "--server URL is required");
  return new ServiceClient({ url, ca: o.caCert ? readInput(o.caCert, "--ca-cert") : undefined });
}

function akHandleArg(v: string): number | null {
  if (v === "none") return null;
  if (!/^(0x)?[0-9a-fA-F]{8}$/.test(v)) throw new TpmTrustError("ERR_USAGE", `--ak-handle must be a persistent handle like 0x81010003, or none; got "${v}"`);
  return parseInt(v.replace(/^0x/i, ""), 16);
}

function intervalArg(v: string): number {
  const s = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(s > 0) || s > 86_400) throw new TpmTrustError("ERR_USAGE", `--interval must be seconds in (0, 86400], got "${v}"`);
  return Math.round(s * 1000);
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface OffChipFlags {
  ekCertUrl?: string;
  ekCertVendor?: "intel" | "amd";
  ekCertCache: string;
}

const offChipOptions = (o: OffChipFlags): OffChipOptions => ({
  ...(o.ekCertUrl ? { baseUrl: o.ekCertUrl } : {}),
  ...(o.ekCertVendor ? { vendor: o.ekCertVendor } : {}),
  cacheDir: o.ekCertCache,
});

/** The flags naming the maker's off-chip EK certificate service (Intel PTT, AMD fTPM). */
function addOffChipOptions(c: Command): Command {
  return c
    .addOption(new Option("--ek-cert-url <url>", "the EK certificate service's base URL instead of the maker's (a mirror)").env("TPMTRUST_EK_CERT_URL"))
    .addOption(new Option("--ek-cert-vendor <vendor>", "the service's URL scheme (default from the TPM's manufacturer: INTC, AMD)").choices(["intel", "amd"]))
    .addOption(new Option("--ek-cert-cache <dir>", "where fetched EK certificates are kept").default(join(process.env.TPMTRUST_AGENT_STATE ?? DEFAULT_STATE_DIR, "ek-certs")));
}

const tpmOption = () => new Option("--tpm <spec>", `the TPM: ${TPM_SPEC_HELP}`).default("/dev/tpmrm0");
const serverOption = () => new Option("--server <url>", "the tpmtrust service, e.g. https://attest.example:7443");
const stateOption = () => new Option("--state-dir <dir>", "where the agent keeps its AK registration and last token (0700)").default(process.env.TPMTRUST_AGENT_STATE ?? DEFAULT_STATE_DIR);
const caOption = () => new Option("--ca-cert <file>", "PEM CA certificate to trust for the service's TLS certificate");
const eventlogOption = () => new Option("--eventlog <path>", `the TCG event log (default ${DEFAULT_EVENTLOG}; left out with a warning if that is missing)`);
const imaOption = () => new Option("--ima [path]", `send the IMA measurement list (default ${DEFAULT_IMA_LIST}), incrementally: the entries after those the service verified`);
const imaOf = (v: string | true | undefined) => (v === undefined ? undefined : { path: v === true ? DEFAULT_IMA_LIST : v, progress: {} });

function printVerdict(r: Awaited<ReturnType<typeof attest>>, json: boolean | undefined, stateDir: string): number {
  if (json) printJson(r);
  else {
    process.stdout.write(`${r.verdict} host=${r.host}${r.code ? ` code=${r.code}` : ""}${r.message ? ` ${r.message}` : ""}\n`);
    if (r.token) process.stdout.write(`token ${r.token}\n`);
    if (r.diff) process.stdout.write(`diff ${JSON.stringify(r.diff, null, 2)}\n`);
    if (r.token) process.stderr.write(`token saved to ${tokenPath(stateDir)}\n`);
  }
  return r.verdict === "pass" ? 0 : 1;
}

export function register(program: Command): void {
  const agent = program
    .command("agent")
    .description("the attester on a host: identify its TPM, activate an AK (credential activation), attest (exit 0 ok, 1 rejected, 2 unusable input or unreachable)");

  addOffChipOptions(
    agent
      .command("identify")
      .description("print the host's platform identifier (EK publics, EK certificates, TPM maker and firmware) as JSON: tpmtrust agent identify > host.json")
      .addOption(tpmOption())
      .option("--fetch-ek-cert", "fetch the certificates of EKs without one in NV from the TPM maker's service (Intel PTT, AMD fTPM), with a cache")
      .option("--ek-cert <file>", "an EK certificate obtained elsewhere (DER or PEM; repeatable); it must certify one of the TPM's EKs", collect)
      .option("--json", "print JSON (the only format; accepted for symmetry)"),
  ).action(
    action(async (o: { tpm: string; fetchEkCert?: boolean; ekCert?: string[] } & OffChipFlags) => {
      const ekCertificates = (o.ekCert ?? []).map((f) => ({ der: loadCertificate(readInput(f, "--ek-cert")).der, from: f }));
      const { identity, eks, notes } = await withTpm(o.tpm, (tpm) => identify(tpm, { ekCertificates, ...(o.fetchEkCert ? { fetch: offChipOptions(o) } : {}) }));
      for (const e of eks) {
        const where = e.handle !== undefined ? `persistent 0x${e.handle.toString(16)}` : "transient";
        const cert =
          e.certificateSource === "nv"
            ? `certificate NV 0x${e.certificateIndex!.toString(16)}`
            : e.certificateSource === "off-chip"
              ? `certificate off-chip ${e.certificateUrl}`
              : e.certificateSource === "file"
                ? "certificate from --ek-cert"
                : "no certificate";
        const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;
        const made =
          e.source !== "template"
            ? "not from a profile template"
            : `template ${e.template}${e.templateIndex !== undefined ? ` from NV ${hex(e.templateIndex)}` : ""}${e.nonceIndex !== undefined ? ` with nonce NV ${hex(e.nonceIndex)}` : ""}`;
        process.stderr.write(`EK ${e.kind} (${made}, ${where}, ${cert})${e.enrollment ? ", used by agent activate" : ""}\n`);
      }
      for (const n of notes) process.stderr.write(`note: ${n}\n`);
      printJson(identity);
    }),
  );

  addOffChipOptions(
    agent
      .command("doctor")
      .description("TPM readiness check (as Get-Tpm): maker and firmware, ownership, lockout, PCR banks, EKs and certificates (NV, chain, off-chip), SRK, free handles and NV; each problem with its fix")
      .addOption(tpmOption())
      .option("--offline", "do not ask the maker's off-chip EK certificate service")
      .option("--rc <code>", "only explain a TPM response code (e.g. 0x921): its name, meaning and fix")
      .option("--json", "print one JSON object"),
  ).action(
    action(async (o: { tpm: string; json?: boolean; offline?: boolean; rc?: string } & OffChipFlags) => {
      if (o.rc !== undefined) {
        if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(o.rc)) throw new TpmTrustError("ERR_USAGE", `--rc must be a response code like 0x921, got "${o.rc}"`);
        const d = describeRc(Number(o.rc));
        if (o.json) return printJson({ rc: `0x${d.rc.toString(16).padStart(3, "0")}`, name: d.name, ...(d.subject ? { subject: d.subject } : {}), meaning: d.meaning ?? null, fix: d.fix ?? null });
        process.stdout.write(`${d.name}${d.subject ? ` (${d.subject.kind} ${d.subject.index})` : ""}: ${d.meaning ?? "no meaning known (a vendor code?)"}\n${d.fix ? `fix: ${d.fix}\n` : ""}`);
        return;
      }
      const d = await withTpm(o.tpm, (tpm) => doctor(tpm, { offChip: o.offline ? false : offChipOptions(o) }));
      if (o.json) return printJson(d);
      const hex = (n: number) => `0x${n.toString(16)}`;
      process.stdout.write(
        `TPM ${d.tpm.family} ${d.tpm.manufacturer} ${d.tpm.vendorString} firmware ${d.tpm.firmware}\n` +
          `owned: ${d.owned}; lockout: ${d.lockout.inLockout ? "LOCKED" : "no"} (${d.lockout.counter}/${d.lockout.maxAuthFail}, interval ${d.lockout.intervalSeconds} s, recovery ${d.lockout.recoverySeconds} s)\n` +
          `PCR banks: ${d.pcrBanks.join(", ")}\nEKs: ${d.eks.map((e) => e.kind + (e.certificateIndex ? ` (certificate NV ${hex(e.certificateIndex)})` : e.handle ? ` (persistent ${hex(e.handle)})` : "")).join(", ") || "none with a certificate"}` +
          `${d.ekChainCertificates ? `; ${d.ekChainCertificates} chain certificate(s) in NV` : ""}\n` +
          d.offChip.map((c) => `off-chip ${c.kind}: ${c.available ? (c.cached ? "cached" : "available") : "unavailable"} ${c.url}\n`).join("") +
          `SRK: ${d.srkPresent ? "present" : "absent"}; persistent handles free: ${d.persistentHandlesFree}; transient slots free: ${d.transientSlotsFree}\n` +
          `NV: ${d.nv.indices} indices, ${d.nv.bytesDefined} bytes defined, largest index allowed ${d.nv.indexMaxBytes} bytes, ${d.nv.countersAvailable} counters available (TPM 2.0 reports no free NV bytes)\n` +
          d.problems.map((p) => `problem: ${p.problem}\n  fix: ${p.fix}\n`).join(""),
      );
    }),
  );

  agent
    .command("activate")
    .alias("register")
    .description("AK activation: create an AK under the EK, prove it with credential activation, and bind it to this host at the service (alias: register)")
    .addOption(serverOption().makeOptionMandatory())
    .addOption(tpmOption())
    .addOption(stateOption())
    .addOption(caOption())
    .addOption(new Option("--ek-alg <alg>", "the EK to create the AK under").choices(Object.keys(EK_ALG_KINDS)).default("rsa"))
    .addOption(new Option("--ek <which>", "when the TPM has both: the EK made from the profile's template, or the one another stack persisted (auto: the persisted one)").choices(["auto", "template", "persistent"]).default("auto"))
    .addOption(new Option("--ak-alg <alg>", "the AK's key type").choices(["rsa", "ecc"]).default("rsa"))
    .option("--ak-handle <handle|none>", "persistent handle for the AK, or none to keep its blobs in the state dir", "0x81010003")
    .option("--json", "print one JSON object")
    .action(
      action(async (o: Common & { ekAlg: keyof typeof EK_ALG_KINDS; ek: EkChoice; akAlg: "rsa" | "ecc"; akHandle: string }) => {
        const akHandle = akHandleArg(o.akHandle);
        const svc = service(o);
        const s = await withTpm(o.tpm, (tpm) => activate(tpm, svc, { stateDir: o.stateDir, ekAlg: EK_ALG_KINDS[o.ekAlg], ek: o.ek, akAlg: o.akAlg, akHandle, log: logger("warn") }));
        const out = { host: s.host, akNameHex: s.akNameHex, akHandle: s.akHandle === undefined ? null : `0x${s.akHandle.toString(16)}`, stateDir: o.stateDir, akCertificate: s.akCertificate ?? null };
        if (o.json) printJson(out);
        else process.stdout.write(`registered host=${out.host} ak=${out.akNameHex} ${out.akHandle ? `handle=${out.akHandle}` : `blobs in ${o.stateDir}`}\n`);
      }),
    );

  agent
    .command("attest")
    .description("attest once: quote the PCRs the service asks for, send quote, PCRs and event log, print the verdict and token")
    .addOption(serverOption())
    .addOption(tpmOption())
    .addOption(eventlogOption())
    .addOption(imaOption())
    .addOption(stateOption())
    .addOption(caOption())
    .option("--json", "print one JSON object")
    .action(
      action(async (o: Common & { eventlog?: string; ima?: string | true }) => {
        const svc = service(o, readState(o.stateDir).server);
        const r = await withTpm(o.tpm, (tpm) => attest(tpm, svc, { stateDir: o.stateDir, eventLog: o.eventlog, eventLogRequired: o.eventlog !== undefined, ima: imaOf(o.ima), log: logger("warn") }));
        return printVerdict(r, o.json, o.stateDir);
      }),
    );

  agent
    .command("run")
    .description("attest every --interval seconds until SIGTERM, backing off after errors; logs JSON lines to stderr")
    .addOption(serverOption())
    .addOption(tpmOption())
    .addOption(eventlogOption())
    .addOption(imaOption())
    .addOption(stateOption())
    .addOption(caOption())
    .option("--interval <seconds>", "seconds between attestations", "60")
    .action(
      action(async (o: Common & { eventlog?: string; ima?: string | true; interval: string }) => {
        const intervalMs = intervalArg(o.interval);
        const svc = service(o, readState(o.stateDir).server);
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
        try {
          await run({ tpm: o.tpm, service: svc, stateDir: o.stateDir, eventLog: o.eventlog, eventLogRequired: o.eventlog !== undefined, ima: imaOf(o.ima), intervalMs, signal: ac.signal, log: logger("info") });
        } finally {
          process.off("SIGTERM", stop);
          process.off("SIGINT", stop);
        }
      }),
    );
}
