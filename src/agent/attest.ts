/**
 * `tpmtrust agent attest`: one round of host attestation (docs/api.md).
 *
 *   POST /v1/attestations/challenge {akNameHex, banks (the TPM's)} → nonce + PCR selection
 *   → TPM2_Quote with the bound AK over the selection, one quote per bank
 *   → TPM2_PCR_Read of the same PCRs (quoted again if they moved in between)
 *   → the event log file → POST /v1/attestations → verdict (+ token, or the diff)
 *
 * In continuous attestation an unchanged log is named by its SHA-256 once the service has passed
 * it; a service that has not judged that log (another instance, a restart, a new policy version)
 * answers ERR_EVENTLOG_REQUIRED without spending the nonce, and the log itself follows.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { AttestationResult } from "../attest/attest.js";
import type { EvidenceBody } from "../attest/evidence.js";
import { decodeBase64 } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, hashAlgByName } from "../tpm/constants.js";
import {
  type AttestResult,
  ekAuth,
  FlushContext,
  getHandles,
  getPcrBanks,
  Load,
  pcrReadAll,
  Quote,
  ReadPublic,
  type TpmClient,
} from "../tpm/commands/index.js";
import { decodeTpm2bPrivate, decodeTpm2bPublic, pcrSelection, selectedPcrs } from "../tpm/structures.js";
import type { QuoteAttest, TpmsPcrSelection } from "../tpm/types.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { checkPcrDigest } from "../verify/quote.js";
import type { ServiceClient } from "./http.js";
import { clearToken, readState, writeToken, type AgentState } from "./state.js";
import { withEk } from "./tpm.js";
import { imaIncrement, type ImaOptions } from "./ima.js";

/** Where Linux exposes the firmware's TCG event log (securityfs). */
export const DEFAULT_EVENTLOG = "/sys/kernel/security/tpm0/binary_bios_measurements";

export type { AttestationResult };

export interface AttestOptions {
  stateDir: string;
  /** the event log file (default: the Linux securityfs path) */
  eventLog?: string;
  /** a missing event log is an error (true when the path was given explicitly); else it is left out with a warning */
  eventLogRequired?: boolean;
  /** kept across rounds (agent run): the SHA-256 of the log of the last passing round */
  passedLog?: { sha256?: string };
  /** send the IMA measurement list incrementally (agent run --ima) */
  ima?: ImaOptions;
  log?: Logger;
}

interface Challenge {
  nonceHex: string;
  expiresAt: number;
  host: string;
  pcrSelection: { bank: string; pcrs: number[] }[];
}

/** A quote together with the PCR values it covers. */
export interface Evidence {
  quotes: AttestResult[];
  pcrs: PcrValues;
}

/** Tries to quote while the PCRs stand still; extends between quote and read start over. */
const QUOTE_ATTEMPTS = 3;

/** Runs `fn` with the activated AK: at its persistent handle, or loaded from its blobs under the EK (and flushed afterwards); its Name is checked. */
export async function withAk<T>(tpm: TpmClient, s: AgentState, fn: (handle: number) => Promise<T>): Promise<T> {
  const check = (name: Buffer, where: string) => {
    if (name.toString("hex") !== s.akNameHex) {
      throw new TpmTrustError("ERR_KEY_MISMATCH", `${where} is not the activated AK ${s.akNameHex} (Name ${name.toString("hex")}); run \`tpmtrust agent activate\` again`);
    }
  };
  if (s.akHandle !== undefined) {
    const where = `the object at 0x${s.akHandle.toString(16)}`;
    if (!(await getHandles(tpm, s.akHandle)).includes(s.akHandle)) {
      throw new TpmTrustError("ERR_KEY_MISMATCH", `the TPM has no object at 0x${s.akHandle.toString(16)} (the activated AK); run \`tpmtrust agent activate\` again`);
    }
    check((await tpm.run(ReadPublic, { objectHandle: s.akHandle })).name, where);
    return fn(s.akHandle);
  }
  const pub = decodeTpm2bPublic(decodeBase64(s.akPublic, "akPublic"));
  const priv = decodeTpm2bPrivate(decodeBase64(s.akPrivate, "akPrivate"));
  const handle = await withEk(
    tpm,
    s.ekAlg,
    async (ek) => (await tpm.run(Load, { parentHandle: ek.handle, inPrivate: priv, inPublic: pub, auth: await ekAuth(tpm, ek.public) })).handle,
    s.ekSource ?? "auto",
  );
  try {
    check((await tpm.run(ReadPublic, { objectHandle: handle })).name, "the AK loaded from the state directory");
    return await fn(handle);
  } finally {
    await tpm.run(FlushContext, { flushHandle: handle }).catch(() => undefined);
  }
}

/**
 * The requested selection, limited to what this TPM has allocated: a bank the TPM lacks cannot be
 * quoted (the service then sees it missing and decides).
 */
function quotableSelection(banks: TpmsPcrSelection[], requested: Challenge["pcrSelection"], log?: Logger): TpmsPcrSelection[] {
  const allocated = new Map(banks.map((s) => [s.hash, new Set(selectedPcrs(s))]));
  const out: TpmsPcrSelection[] = [];
  for (const { bank, pcrs } of requested) {
    const alg = hashAlgByName(bank);
    const have = alg === undefined ? undefined : allocated.get(alg);
    if (alg === undefined || !have) {
      log?.warn({ bank }, "the service asked for a PCR bank this TPM does not have");
      continue;
    }
    const ok = pcrs.filter((p) => have.has(p));
    if (ok.length < pcrs.length) log?.warn({ bank, missing: pcrs.filter((p) => !have.has(p)) }, "the service asked for PCRs this TPM does not have");
    if (ok.length) out.push(pcrSelection(alg, ok));
  }
  if (out.length === 0) throw new TpmTrustError("ERR_PCR_SELECTION_MISMATCH", "none of the requested PCRs exist in this TPM", { requested });
  return out;
}

/**
 * Quotes `selection` with one TPM2_Quote per bank (each bank's pcrDigest on its own, as verifiers
 * expect), then reads the PCRs. If a PCR was extended in between, the values no longer hash to a
 * quote's pcrDigest: quote and read again.
 */
export async function quotePcrs(tpm: TpmClient, ak: number, nonce: Buffer, selection: TpmsPcrSelection[]): Promise<Evidence> {
  for (let attempt = 1; ; attempt++) {
    const quotes: AttestResult[] = [];
    for (const sel of selection) quotes.push(await tpm.run(Quote, { signHandle: ak, qualifyingData: nonce, PCRselect: [sel] }));
    const { values } = await pcrReadAll(tpm, selection);
    const pcrs: PcrValues = {};
    for (const [alg, byPcr] of values) pcrs[HASH_ALGS[alg].name] = Object.fromEntries(byPcr);
    try {
      for (const q of quotes) checkPcrDigest(q.attested as QuoteAttest, q.signature, pcrs);
      return { quotes, pcrs };
    } catch (e) {
      if (!(e instanceof TpmTrustError && e.code === "ERR_PCR_DIGEST_MISMATCH") || attempt === QUOTE_ATTEMPTS) throw e;
    }
  }
}

function readEventLog(o: AttestOptions): Buffer | undefined {
  const path = o.eventLog ?? DEFAULT_EVENTLOG;
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!o.eventLogRequired && code === "ENOENT") {
      o.log?.warn({ path }, "no event log; attesting with the quote alone");
      return undefined;
    }
    throw new TpmTrustError("ERR_IO", `--eventlog: cannot read ${path}: ${code ?? (e as Error).message}`, { path });
  }
}

/** The body of POST /v1/attestations: the quotes and PCR values as the TPM gave them, and the event log (or its SHA-256 in hex). */
export function evidenceBody(akNameHex: string, nonceHex: string, ev: Evidence, eventLog?: Buffer | string): EvidenceBody {
  return {
    akNameHex,
    nonceHex,
    quotes: ev.quotes.map((q) => ({ attest: q.attest.toString("base64"), signature: q.signatureBytes.toString("base64") })),
    pcrs: Object.fromEntries(Object.entries(ev.pcrs).map(([bank, v]) => [bank, Object.fromEntries(Object.entries(v).map(([i, d]) => [i, d.toString("hex")]))])),
    ...(typeof eventLog === "string" ? { eventLogSha256: eventLog } : eventLog ? { eventLog: eventLog.toString("base64") } : {}),
  };
}

/** One attestation round with the AK activated in `o.stateDir`; stores the token of a passing verdict. */
export async function attest(tpm: TpmClient, service: ServiceClient, o: AttestOptions): Promise<AttestationResult> {
  const state = readState(o.stateDir);
  const eventLog = readEventLog(o);
  const banks = await getPcrBanks(tpm);
  const challenge = await service.post<Challenge>("/v1/attestations/challenge", {
    akNameHex: state.akNameHex,
    banks: banks.filter((b) => HASH_ALGS[b.hash]).map((b) => HASH_ALGS[b.hash].name),
  });
  if (typeof challenge.nonceHex !== "string" || !/^([0-9a-fA-F]{2})+$/.test(challenge.nonceHex) || !Array.isArray(challenge.pcrSelection)) {
    throw new TpmTrustError("ERR_UNREACHABLE", "the challenge answer lacks a nonce or a PCR selection");
  }
  const nonce = Buffer.from(challenge.nonceHex, "hex");
  const selection = quotableSelection(banks, challenge.pcrSelection, o.log);
  const evidence = await withAk(tpm, state, (ak) => quotePcrs(tpm, ak, nonce, selection));
  const sha256 = eventLog ? createHash("sha256").update(eventLog).digest("hex") : undefined;
  const post = (log: Buffer | string | undefined, imaFrom: number | undefined) =>
    service.post<AttestationResult>("/v1/attestations", {
      ...evidenceBody(state.akNameHex, challenge.nonceHex, evidence, log),
      ...(o.ima && imaFrom !== undefined ? { ima: imaIncrement(o.ima.path, evidence.pcrs, imaFrom) } : {}),
    });
  // a service that did not verify the entries before the increment names the index to send from (same nonce)
  const send = (log?: Buffer | string) =>
    post(log, o.ima?.progress.nextIndex).catch((e: unknown) => {
      if (!(o.ima && e instanceof TpmTrustError && e.code === "ERR_IMA_LIST_REQUIRED")) throw e;
      const from = typeof e.details?.fromIndex === "number" ? e.details.fromIndex : 0;
      o.log?.debug({ fromIndex: from }, "the service asks for the IMA list from another entry");
      return post(log, from);
    });
  let result: AttestationResult;
  if (sha256 && o.passedLog?.sha256 === sha256) {
    result = await send(sha256).catch((e: unknown) => {
      if (!(e instanceof TpmTrustError && e.code === "ERR_EVENTLOG_REQUIRED")) throw e;
      o.log?.debug({ eventLogSha256: sha256 }, "the service asks for the event log itself");
      return send(eventLog);
    });
  } else {
    result = await send(eventLog);
  }
  if (o.passedLog) o.passedLog.sha256 = result.verdict === "pass" ? sha256 : undefined;
  if (o.ima) o.ima.progress.nextIndex = result.ima?.nextIndex;
  if (result.verdict === "pass" && typeof result.token === "string") writeToken(o.stateDir, result.token);
  else clearToken(o.stateDir);
  o.log?.info({ host: result.host, verdict: result.verdict, code: result.code }, "attested");
  return result;
}
