/**
 * The key attestation CA. Enrollment is public (the proof is TPM evidence, or the token it carries):
 * a request may carry an admin or enroller API token, whose holder is then the requester the
 * template must admit; an enroller's token is what the `user-credentials` trust model rests on. Templates and
 * certificate management need admin (writes) or auditor (reads) tokens; the CRL and the CA chain
 * are public.
 */
import type { FastifyRequest } from "fastify";
import type { RouteModule } from "../app.js";
import { ADMINS, READERS, actorOf, optionalAdmin } from "../auth.js";
import { BASE64_PATTERN, certificatePem, decodeBase64, pemBlocks } from "../../encoding.js";
import { caChain, initCa } from "../../ca/authority.js";
import { CA_KEY_ALGS, type CaKeyAlg } from "../../ca/signing.js";
import { certView, getCertificate, listCertificates } from "../../ca/certificates.js";
import { currentCrl, publishCrl, revokeCertificate, REVOCATION_REASONS } from "../../ca/crl.js";
import { enroll, enrollChallenge, type TokenRequester } from "../../ca/enroll.js";
import { currentXchg } from "../../ca/xchg.js";
import { cmcRequest } from "../../ca/cmc.js";
import { denyPendingRequest, getPendingRequest, listPendingRequests } from "../../ca/requests.js";
import { TEMPLATE_NAME_PATTERN, TEMPLATE_SCHEMA, getTemplate, listTemplates, putTemplate, removeTemplate } from "../../ca/templates.js";
import { TpmTrustError } from "../../errors.js";
import type { Store } from "../../store/index.js";
import { counted, metrics } from "../metrics.js";
import { pageList, type PageQuery } from "../paging.js";

const tags = ["ca"];
const B64 = (max: number, description: string) => ({ type: "string", minLength: 4, maxLength: max, pattern: BASE64_PATTERN, description }) as const;
const NAME_PARAMS = { type: "object", additionalProperties: false, required: ["name"], properties: { name: { type: "string", pattern: TEMPLATE_NAME_PATTERN } } } as const;
const REQUEST_PARAMS = { type: "object", additionalProperties: false, required: ["id"], properties: { id: { type: "string", pattern: "^[1-9][0-9]{0,9}$" } } } as const;
const SERIAL_PARAMS = { type: "object", additionalProperties: false, required: ["serial"], properties: { serial: { type: "string", pattern: "^[0-9A-Fa-f:]{1,64}$" } } } as const;

interface EnrollBody {
  template: string;
  csr: string;
  attestation?: { keyPublic: string; certify: { attest: string; signature: string }; akNameHex: string };
}

/** The enrolling principal: anonymous, an admin or an enroller (ERR_UNAUTHENTICATED for a bad token, ERR_FORBIDDEN for an auditor's: an auditor never requests or vouches). */
async function requester(store: Store, req: FastifyRequest, at: number, route = "POST /v1/ca/enroll"): Promise<{ actor: string; requester?: TokenRequester }> {
  const p = await optionalAdmin(store, req, ["admin", "enroller"], route, at);
  if (!p) return { actor: "anonymous" };
  if (p.role === "admin") return { actor: p.actor, requester: { kind: "admin", tokenId: p.tokenId } };
  if (!p.identity) throw new TpmTrustError("ERR_FORBIDDEN", "this enroller token carries no identity");
  return { actor: p.actor, requester: { kind: "enroller", tokenId: p.tokenId, identity: p.identity } };
}

const ca: RouteModule = (app, { store, now, publicUrl, attest }) => {
  app.post(
    "/v1/ca/challenge",
    { config: { access: "public" }, schema: { tags, summary: "a single-use nonce: the qualifying data of the TPM2_Certify an enrollment carries" } },
    async (req, reply) => {
      const c = await enrollChallenge(store, now(), { source: req.ip, limit: attest.nonceLimit, windowMs: attest.limitWindowMs });
      return reply.code(201).send({ nonceHex: c.nonce.toString("hex"), expiresAt: c.expiresAt });
    },
  );

  app.post<{ Body: EnrollBody }>(
    "/v1/ca/enroll",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary: "enroll a CSR with TPM key attestation (TPM2_Certify by a bound AK, or a KAST statement in the CSR)",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["template", "csr"],
          properties: {
            template: { type: "string", pattern: TEMPLATE_NAME_PATTERN },
            csr: { type: "string", minLength: 4, maxLength: 90_000, description: "PKCS#10, base64 DER or PEM" },
            attestation: {
              type: "object",
              additionalProperties: false,
              required: ["keyPublic", "certify", "akNameHex"],
              properties: {
                keyPublic: B64(4096, "TPM2B_PUBLIC of the certified key"),
                certify: {
                  type: "object",
                  additionalProperties: false,
                  required: ["attest", "signature"],
                  properties: { attest: B64(4096, "TPMS_ATTEST of TPM2_Certify, extraData = nonce"), signature: B64(4096, "TPMT_SIGNATURE") },
                },
                akNameHex: { type: "string", pattern: "^[0-9a-fA-F]{68,132}$" },
              },
            },
          },
        },
      },
    },
    async (req, reply) => {
      const who = await requester(store, req, now());
      const b = req.body;
      const csr = b.csr.trimStart().startsWith("-----BEGIN") ? b.csr : decodeBase64(b.csr, "csr");
      const a = b.attestation;
      const input = {
        template: b.template,
        csr,
        ...(a
          ? {
              evidence: {
                keyPublic: decodeBase64(a.keyPublic, "attestation.keyPublic"),
                attest: decodeBase64(a.certify.attest, "attestation.certify.attest"),
                signature: decodeBase64(a.certify.signature, "attestation.certify.signature"),
                akNameHex: a.akNameHex.toLowerCase(),
              },
            }
          : {}),
      };
      const r = await counted(metrics.certificateRequests, {}, () => enroll(store, input, { ...who, now: now(), publicUrl }));
      metrics.certificatesIssued.inc({ purpose: "key-attestation" });
      return reply.code(201).send({
        serial: r.serial,
        subject: r.subject,
        notAfter: r.notAfter,
        certificate: r.certificate.toString("base64"),
        certificatePem: certificatePem(r.certificate),
        chainPem: certificatePem(...r.chain),
        policies: r.policies,
        trustModels: r.trustModels,
        attestation: r.attestation,
        ...(r.attestationFailure ? { attestationFailure: r.attestationFailure } : {}),
      });
    },
  );

  // CMC bodies: DER, or base64 / PEM text as Windows' HTTP enrollment transports send it
  app.addContentTypeParser(["application/pkcs7-mime", "application/pkcs10"], { parseAs: "buffer", bodyLimit: 256 * 1024 }, (_req, body, done) => done(null, body));
  app.post<{ Body: Buffer; Querystring: { template?: string; requestId?: string } }>(
    "/v1/ca/cmc",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary:
          "Windows key attestation over CMC (MS-WCCE): a CMC Full PKI Request (or PKCS#10) with KAST and EK info is answered with a pending CMC response carrying the EK challenge and a request id; the answer (EnvelopedData of the secret, ?requestId=N) is answered with the certificate. With the AIK info (an AK certificate of tpmtrust's attestation CA) instead of the EK info, the certificate comes at once",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { template: { type: "string", pattern: TEMPLATE_NAME_PATTERN }, requestId: { type: "string", pattern: "^[1-9][0-9]{0,9}$" } },
        },
      },
    },
    async (req, reply) => {
      const raw = req.body;
      if (!Buffer.isBuffer(raw) || raw.length === 0) throw new TpmTrustError("ERR_VALIDATION", "send the request as application/pkcs7-mime (DER, base64 or PEM)");
      const text = raw[0] !== 0x30;
      let body = raw;
      if (text) {
        const s = raw.toString("latin1").trim();
        const pem = pemBlocks(s);
        body = pem.length === 1 ? pem[0].der : decodeBase64(s.replace(/\s+/g, ""), "body");
      }
      const who = await requester(store, req, now(), "POST /v1/ca/cmc");
      const r = await counted(metrics.certificateRequests, {}, () => cmcRequest(store, body, { template: req.query.template, requestId: req.query.requestId === undefined ? undefined : Number(req.query.requestId) }, { ...who, now: now(), publicUrl }));
      if (r.status === "issued") metrics.certificatesIssued.inc({ purpose: "key-attestation" });
      if (r.requestId !== undefined) reply.header("tpmtrust-request-id", String(r.requestId));
      if (r.issued) reply.header("tpmtrust-serial", r.issued.serial);
      // answered in the encoding asked in
      return reply
        .code(r.status === "issued" ? 201 : 202)
        .type(text ? "application/pkcs7-mime; smime-type=CMC-response; encoding=base64" : "application/pkcs7-mime; smime-type=CMC-response")
        .send(text ? r.response.toString("base64") : r.response);
    },
  );

  app.post<{ Body: { alg?: CaKeyAlg; keyServer?: string; keyDir?: string; anyPolicy?: boolean; organization?: string } }>(
    "/v1/ca/init",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "create the root and the issuing CA (once; ERR_CONFLICT after), their keys sealed by keyServer or written as files beside the database",
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            alg: { type: "string", enum: [...CA_KEY_ALGS] },
            keyServer: { type: "string", minLength: 1, maxLength: 128 },
            keyDir: { type: "string", minLength: 1, maxLength: 4096, description: "only from the CLI on the service's machine (tpmtrust ca init --key-dir without --server)" },
            anyPolicy: { type: "boolean" },
            organization: { type: "string", minLength: 1, maxLength: 64 },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body ?? {};
      // a folder to write key files to is the service machine's operator's choice, never a remote caller's
      if (b.keyDir !== undefined && !req.principal?.local) throw new TpmTrustError("ERR_VALIDATION", "keyDir names a folder on the service's machine: run tpmtrust ca init --key-dir there, or seal the keys with keyServer");
      return reply.code(201).send(await initCa(store, { ...b, actor: actorOf(req), now: now() }));
    },
  );

  app.post("/v1/ca/crl", { config: { access: ADMINS }, schema: { tags, summary: "publish a new CRL now: its number, next update and DER (base64)" } }, async (_req, reply) => {
    const crl = await publishCrl(store, now());
    return reply.code(201).send({ number: crl.number, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, crl: crl.der.toString("base64") });
  });

  app.get("/v1/ca/crl", { config: { access: "public" }, schema: { tags, summary: "the issuing CA's CRL (DER, application/pkix-crl)" } }, async (_req, reply) => {
    const crl = await currentCrl(store, now());
    return reply.type("application/pkix-crl").header("cache-control", "public, max-age=300").send(crl.der);
  });

  app.get("/v1/ca/xchg", { config: { access: "public" }, schema: { tags, summary: "the CA exchange certificate (EK info is encrypted to it), then the CA chain (PEM)" } }, async (_req, reply) => {
    const x = await currentXchg(store, { actor: "anonymous", now: now() });
    return reply.type("application/pem-certificate-chain").send(certificatePem(Buffer.from(x.certificate.rawData), ...(await caChain(store))));
  });

  app.get("/v1/ca/certs/ca", { config: { access: "public" }, schema: { tags, summary: "the CA chain, issuing CA then root (PEM)" } }, async (_req, reply) =>
    reply.type("application/pem-certificate-chain").send(certificatePem(...(await caChain(store)))),
  );

  // ---- templates

  app.get<{ Querystring: PageQuery }>("/v1/ca/templates", { config: { access: READERS, paged: true }, schema: { tags, summary: "certificate templates" } }, async (req, reply) => pageList(req, reply, await listTemplates(store), (x) => x.name));
  app.get<{ Params: { name: string } }>("/v1/ca/templates/:name", { config: { access: READERS }, schema: { tags, summary: "one template", params: NAME_PARAMS } }, async (req) =>
    getTemplate(store, req.params.name),
  );
  app.post("/v1/ca/templates", { config: { access: ADMINS }, schema: { tags, summary: "create or replace a template", body: TEMPLATE_SCHEMA } }, async (req, reply) =>
    reply.code(201).send(await putTemplate(store, req.body, { actor: actorOf(req), now: now() })),
  );
  app.delete<{ Params: { name: string } }>("/v1/ca/templates/:name", { config: { access: ADMINS }, schema: { tags, summary: "remove a template", params: NAME_PARAMS } }, async (req, reply) => {
    await removeTemplate(store, req.params.name, { actor: actorOf(req), now: now() });
    return reply.code(204).send();
  });

  // ---- pending key attestation requests (CMC EK challenge)

  app.get<{ Querystring: { all?: "true" | "false" } & PageQuery }>(
    "/v1/ca/requests",
    {
      config: { access: READERS, paged: true },
      schema: {
        tags,
        summary: "key attestation requests waiting for the answer to their EK challenge, newest first (all=true: answered and expired ones too)",
        querystring: { type: "object", additionalProperties: false, properties: { all: { enum: ["true", "false"] } } },
      },
    },
    async (req, reply) => pageList(req, reply, await listPendingRequests(store, { all: req.query.all === "true", now: now() }), (x) => String(x.requestId)),
  );
  app.get<{ Params: { id: string } }>("/v1/ca/requests/:id", { config: { access: READERS }, schema: { tags, summary: "one key attestation request", params: REQUEST_PARAMS } }, async (req) =>
    getPendingRequest(store, Number(req.params.id), now()),
  );
  app.post<{ Params: { id: string }; Body: { reason?: string } }>(
    "/v1/ca/requests/:id/deny",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "deny a request waiting for its answer (AD CS certutil -deny): removed, audited as event 53; its answer then finds no request",
        params: REQUEST_PARAMS,
        body: { type: "object", additionalProperties: false, properties: { reason: { type: "string", maxLength: 256 } } },
      },
    },
    async (req) => denyPendingRequest(store, Number(req.params.id), { reason: req.body?.reason ?? null, actor: actorOf(req), now: now() }),
  );

  // ---- issued certificates

  app.get<{ Querystring: { template?: string; host?: string; revoked?: "true" | "false"; all?: "true" | "false" } & PageQuery }>(
    "/v1/ca/certs",
    {
      config: { access: READERS, paged: true },
      schema: {
        tags,
        summary: "issued certificates, newest first",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { template: { type: "string", pattern: TEMPLATE_NAME_PATTERN }, host: { type: "string", maxLength: 128 }, revoked: { enum: ["true", "false"] }, all: { enum: ["true", "false"] } },
        },
      },
    },
    async (req, reply) => {
      const q = req.query;
      return pageList(req, reply, await listCertificates(store, { template: q.template, host: q.host, ...(q.revoked ? { revoked: q.revoked === "true" } : {}), all: q.all === "true" }), (x) => x.serial);
    },
  );
  app.get<{ Params: { serial: string } }>("/v1/ca/certs/:serial", { config: { access: READERS }, schema: { tags, summary: "one certificate with its PEM", params: SERIAL_PARAMS } }, async (req) => {
    return getCertificate(store, req.params.serial);
  });
  app.post<{ Params: { serial: string }; Body: { reason?: string } }>(
    "/v1/ca/certs/:serial/revoke",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "revoke a certificate (RFC 5280 reason) and publish a new CRL",
        params: SERIAL_PARAMS,
        body: { type: "object", additionalProperties: false, properties: { reason: { enum: Object.keys(REVOCATION_REASONS) } } },
      },
    },
    async (req) => certView(await revokeCertificate(store, req.params.serial, { reason: req.body?.reason ?? "unspecified", actor: actorOf(req), now: now() })),
  );
};
export default ca;
