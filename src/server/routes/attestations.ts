/**
 * Host attestation: challenge, evidence, and one attestation's record. The host proves itself with
 * its bound AK (a quote over the single-use nonce), never with a shared secret. The health monitor
 * (silent hosts, webhook deliveries) runs with the server and stops with it.
 */
import type { RouteModule } from "../app.js";
import { READERS } from "../auth.js";
import { BASE64_PATTERN } from "../../encoding.js";
import { attest } from "../../attest/attest.js";
import { getAttestation } from "../../attest/attestations.js";
import { issueChallenge } from "../../attest/challenge.js";
import type { EvidenceBody } from "../../attest/evidence.js";
import { JudgementCache } from "../../attest/judge.js";
import { ImaTracker } from "../../attest/ima.js";
import { quoteVerifier } from "../../attest/quote-verifier.js";
import { counted, metrics, timeAttestation } from "../metrics.js";

const tags = ["attestation"];
const BANKS = ["sha1", "sha256", "sha384", "sha512", "sm3_256", "sha3_256", "sha3_384", "sha3_512"];
/** A TPM Name (nameAlg ‖ digest) in hex. */
const AK_NAME = { type: "string", pattern: "^(?:[0-9a-fA-F]{2}){22,66}$" } as const;
const B64 = (maxLength: number, description: string) => ({ type: "string", minLength: 4, maxLength, pattern: BASE64_PATTERN, description }) as const;
const SELECTION = { type: "array", items: { type: "object", additionalProperties: false, required: ["bank", "pcrs"], properties: { bank: { type: "string" }, pcrs: { type: "array", items: { type: "integer" } } } } } as const;
const BANK_PCR = { type: "object", additionalProperties: false, required: ["bank", "pcr"], properties: { bank: { type: "string" }, pcr: { type: "integer" } } } as const;

const RESULT = {
  type: "object",
  additionalProperties: false,
  properties: {
    attestationId: { type: "string" },
    verdict: { type: "string", enum: ["pass", "fail"] },
    code: { type: ["string", "null"] },
    message: { type: "string" },
    host: { type: "string" },
    hardwareClass: { type: "string" },
    policyVersion: { type: ["string", "null"], enum: ["v2", "v1", null], description: "the HGS policy version whose artifact set passed (v2 is tried first, then v1)" },
    policies: { type: "array", items: { type: "object", additionalProperties: false, properties: { id: { type: "string" }, kind: { type: "string" }, name: { type: "string" }, version: { type: "integer" } } } },
    pcrDigestHex: { type: "string" },
    token: { type: "string" },
    tokenExpiresAt: { type: "integer" },
    diff: {},
    explainedPcrs: { type: "array", items: BANK_PCR },
    unexplainedPcrs: { type: "array", items: { ...BANK_PCR, required: [...BANK_PCR.required, "reason"], properties: { ...BANK_PCR.properties, reason: { type: "string" } } } },
    workarounds: { type: "array", items: { type: "object", additionalProperties: true } },
    ima: {
      type: "object",
      additionalProperties: false,
      description: "IMA progress of this boot (runtime policies): entries verified, where the next increment starts, failing entries",
      properties: {
        entriesVerified: { type: "integer" },
        nextIndex: { type: "integer" },
        covered: { type: "integer" },
        failures: { type: "integer" },
        lastFailure: { type: "object", additionalProperties: true },
        workarounds: { type: "array", items: { type: "object", additionalProperties: true } },
      },
    },
  },
} as const;

const attestations: RouteModule = (app, { store, now, attest: cfg, monitor }) => {
  const judgements = new JudgementCache(cfg.judgementCacheSize);
  const ima = new ImaTracker();
  const quotes = quoteVerifier(cfg.verifyThreads, { onVerified: (thread) => metrics.quoteVerifications.inc({ thread }) });
  app.addHook("onClose", () => quotes.close());

  app.post<{ Body: { akNameHex: string; banks?: string[] } }>(
    "/v1/attestations/challenge",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary: "a single-use, expiring nonce bound to the AK, and the PCR selection to quote",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["akNameHex"],
          properties: { akNameHex: AK_NAME, banks: { type: "array", maxItems: 8, uniqueItems: true, items: { type: "string", enum: BANKS }, description: "the TPM's PCR banks (TPM_CAP_PCRS)" } },
        },
        response: {
          201: { type: "object", additionalProperties: false, properties: { nonceHex: { type: "string" }, expiresAt: { type: "integer" }, host: { type: "string" }, pcrSelection: SELECTION } },
        },
      },
    },
    async (req, reply) => {
      const c = await counted(metrics.challenges, {}, () => issueChallenge(store, cfg, now(), { akName: Buffer.from(req.body.akNameHex, "hex"), banks: req.body.banks, source: req.ip }));
      return reply.code(201).send({ nonceHex: c.nonce.toString("hex"), expiresAt: c.expiresAt, host: c.host, pcrSelection: c.pcrSelection });
    },
  );

  app.post<{ Body: EvidenceBody }>(
    "/v1/attestations",
    {
      config: { access: "public" },
      // event logs of real machines reach a few hundred KB, a first IMA list of a busy host some MB
      bodyLimit: 32 * 1024 * 1024,
      schema: {
        tags,
        summary: "evidence: quotes over the nonce, PCR values, event log → verdict, diff, attestation token",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["akNameHex", "nonceHex", "quotes", "pcrs"],
          properties: {
            akNameHex: AK_NAME,
            nonceHex: { type: "string", pattern: "^(?:[0-9a-fA-F]{2}){8,64}$" },
            quotes: {
              type: "array",
              minItems: 1,
              maxItems: 8,
              items: {
                type: "object",
                additionalProperties: false,
                required: ["attest", "signature"],
                properties: { attest: B64(4096, "TPMS_ATTEST"), signature: B64(2048, "TPMT_SIGNATURE") },
              },
            },
            pcrs: {
              type: "object",
              additionalProperties: false,
              properties: Object.fromEntries(
                BANKS.map((b) => [b, { type: "object", additionalProperties: false, patternProperties: { "^(0|[1-9][0-9]?)$": { type: "string", pattern: "^(?:[0-9a-fA-F]{2}){20,64}$" } } }]),
              ),
            },
            // checked by receiveEvidence (strict base64): a pattern over megabytes costs more than the attestation
            eventLog: { type: "string", description: "the binary TCG event log, base64 (standard alphabet, padded); the body limit bounds its size" },
            eventLogSha256: { type: "string", pattern: "^[0-9a-fA-F]{64}$", description: "instead of eventLog: the SHA-256 of the log this service judged before (else ERR_EVENTLOG_REQUIRED: send the log)" },
            ima: {
              type: "object",
              additionalProperties: false,
              required: ["startIndex", "list"],
              description: "IMA measurement list entries from startIndex on (after the last verified entry of this boot; 0: the whole list), in the kernel's binary form, base64. ERR_IMA_LIST_REQUIRED (details.fromIndex) asks for them from another index",
              properties: { startIndex: { type: "integer", minimum: 0, maximum: 100000000 }, list: { type: "string", description: "binary_runtime_measurements bytes, base64 (standard alphabet, padded)" } },
            },
          },
        },
        response: { 200: RESULT },
      },
    },
    async (req) => timeAttestation(() => attest({ store, cfg, now, judgements, quotes, ima, onHealthChange: () => monitor.kick() }, req.body)),
  );

  app.get<{ Params: { id: string } }>(
    "/v1/attestations/:id",
    {
      config: { access: READERS },
      schema: { tags, summary: "one recorded attestation", params: { type: "object", additionalProperties: false, required: ["id"], properties: { id: { type: "string", format: "uuid" } } } },
    },
    async (req) => getAttestation(store, req.params.id),
  );
};
export default attestations;
