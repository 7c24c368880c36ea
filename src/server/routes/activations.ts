/**
 * AK activation (credential activation), and the attestation CA certificate. Public: the caller
 * proves itself with its TPM (only the TPM holding the EK and the AK recovers the secret).
 */
import type { RouteModule } from "../app.js";
import { BASE64_PATTERN, decodeBase64 } from "../../encoding.js";
import { completeActivation, startActivation } from "../../attest/activation.js";
import { attestationCa } from "../../ca/ak-ca.js";
import { certificatePem } from "../../encoding.js";
import { counted, metrics } from "../metrics.js";

const tags = ["activation"];
const PUBLIC_AREA = { type: "string", minLength: 4, maxLength: 4096, pattern: BASE64_PATTERN, description: "TPM2B_PUBLIC, base64" } as const;
const CERTS = { type: "array", maxItems: 16, items: { type: "string", minLength: 4, maxLength: 65536, pattern: BASE64_PATTERN } } as const;

const activations: RouteModule = (app, { store, now, attest: cfg }) => {
  app.post<{ Body: { ekPublic: string; ekCertificates?: string[]; intermediates?: string[]; akPublic: string } }>(
    "/v1/activations",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary: "start AK activation: EK trust and AK checks, then MakeCredential over the AK's Name",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["ekPublic", "akPublic"],
          properties: { ekPublic: PUBLIC_AREA, ekCertificates: CERTS, intermediates: CERTS, akPublic: PUBLIC_AREA },
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const input = {
        ekPublic: decodeBase64(b.ekPublic, "ekPublic"),
        akPublic: decodeBase64(b.akPublic, "akPublic"),
        ekCertificates: (b.ekCertificates ?? []).map((x, i) => decodeBase64(x, `ekCertificates[${i}]`)),
        intermediates: (b.intermediates ?? []).map((x, i) => decodeBase64(x, `intermediates[${i}]`)),
      };
      const c = await counted(metrics.activations, { stage: "start" }, () => startActivation(store, input, { now: now(), limit: { source: req.ip, limit: cfg.activationLimit, windowMs: cfg.limitWindowMs }, admission: cfg.admission }));
      return reply.code(201).send({
        activationId: c.activationId,
        credentialBlob: c.credentialBlob.toString("base64"),
        encryptedSecret: c.encryptedSecret.toString("base64"),
        akNameHex: c.akName.toString("hex"),
        expiresAt: c.expiresAt,
      });
    },
  );

  app.post<{ Params: { id: string }; Body: { secret: string } }>(
    "/v1/activations/:id",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary: "complete AK activation with the secret TPM2_ActivateCredential recovered (one try)",
        params: { type: "object", additionalProperties: false, required: ["id"], properties: { id: { type: "string", format: "uuid" } } },
        body: { type: "object", additionalProperties: false, required: ["secret"], properties: { secret: { type: "string", minLength: 4, maxLength: 128, pattern: BASE64_PATTERN } } },
      },
    },
    async (req) => {
      const r = await counted(metrics.activations, { stage: "complete" }, () => completeActivation(store, req.params.id, decodeBase64(req.body.secret, "secret"), { now: now() }));
      if (r.akCertificate) metrics.certificatesIssued.inc({ purpose: "ak" });
      return {
        host: r.host,
        akNameHex: r.akName.toString("hex"),
        ...(r.akCertificate ? { akCertificate: r.akCertificate.toString("base64") } : { akCertificateError: r.akCertificateError }),
      };
    },
  );

  app.get(
    "/v1/attestation-ca",
    { config: { access: "public" }, schema: { tags, summary: "the attestation CA certificate (PEM) that issues AK certificates (EKU 2.23.133.8.3)" } },
    async (_req, reply) => {
      const ca = await attestationCa(store, now());
      return reply.type("application/pem-certificate-chain").send(certificatePem(Buffer.from(ca.certificate.rawData)));
    },
  );
};
export default activations;
