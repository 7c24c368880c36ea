/** EK trust: allow-list, allow-list folders, EK roots and intermediates, and confirm. Admin writes, admin/auditor reads. */
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS, READERS } from "../auth.js";
import { decodePublic } from "../../attest/identity.js";
import type { PublicKeyInput } from "../../crypto/keys.js";
import { parseKeyInput } from "../../verify/inputs.js";
import { BASE64_PATTERN, decodeBase64 } from "../../encoding.js";
import {
  addAllowlist,
  addAllowlistDir,
  confirm,
  importCaCertificates,
  listAllowlist,
  listAllowlistDirs,
  listCas,
  removeAllowlist,
  removeAllowlistDir,
  removeCa,
  listRevokedEks,
  revokeEk,
  unrevokeEk,
  type ConfirmInput,
} from "../../trust/trust.js";
import type { EkCaKind } from "../../store/index.js";
import { TpmTrustError } from "../../errors.js";
import { pageList, type PageQuery } from "../paging.js";

const EK_HASH = { type: "string", pattern: "^[0-9a-fA-F]{64}$", description: "hex SHA-256 of the EK public key (AD CS rule), any case" } as const;
const B64 = { type: "string", minLength: 4, maxLength: 65536, pattern: BASE64_PATTERN } as const;
const CERTS = { type: "array", maxItems: 64, items: B64 } as const;
const PATH = { type: "object", additionalProperties: false, required: ["path"], properties: { path: { type: "string", minLength: 1, maxLength: 4096 } } } as const;
/** The EK public key of a confirm: a TPM2B_PUBLIC (its own parse error when cut short), else a TPMT_PUBLIC or an SPKI, DER or PEM. */
function ekPublicOf(bytes: Buffer): PublicKeyInput {
  const der = bytes[0] === 0x30 || bytes.subarray(0, 5).toString("latin1") === "-----";
  if (!der) {
    try {
      return decodePublic(bytes, "ekPublic").public;
    } catch (e) {
      // a bare TPMT_PUBLIC, or else the TPM2B_PUBLIC's own error (ERR_PARSE_TRUNCATED, …)
      let k: ReturnType<typeof parseKeyInput>;
      try {
        k = parseKeyInput(bytes, "ekPublic");
      } catch {
        throw e;
      }
      return k.public ?? k.key;
    }
  }
  const k = parseKeyInput(bytes, "ekPublic");
  return k.public ?? k.key;
}
const KIND = { type: "string", enum: ["root", "intermediate"] } as const;
const tags = ["trust"];

const trust: RouteModule = (app, { store, now, monitor }) => {
  const caller = (req: Parameters<typeof actorOf>[0]) => ({ actor: actorOf(req), now: now() });

  app.get<{ Querystring: PageQuery }>("/v1/trust/allowlist", { config: { access: READERS, paged: true }, schema: { tags, summary: "allow-listed EK hashes: database entries and every allow-list folder" } }, async (req, reply) => pageList(req, reply, (await listAllowlist(store)).entries, (x) => x.ekHash));

  app.post<{ Body: { ekHash: string; label?: string } }>(
    "/v1/trust/allowlist",
    {
      config: { access: ADMINS },
      schema: { tags, summary: "allow-list an EK hash", body: { type: "object", additionalProperties: false, required: ["ekHash"], properties: { ekHash: EK_HASH, label: { type: "string", maxLength: 256 } } } },
    },
    async (req, reply) => {
      const r = await addAllowlist(store, { ekHash: req.body.ekHash, label: req.body.label ?? null, via: "api" }, caller(req));
      return reply.code(r.added ? 201 : 200).send(r.entry);
    },
  );

  app.delete<{ Params: { ekHash: string } }>(
    "/v1/trust/allowlist/:ekHash",
    { config: { access: ADMINS }, schema: { tags, summary: "remove a database allow-list entry", params: { type: "object", additionalProperties: false, required: ["ekHash"], properties: { ekHash: EK_HASH } } } },
    async (req, reply) => {
      await removeAllowlist(store, req.params.ekHash, caller(req));
      monitor.trustChanged();
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: PageQuery }>("/v1/trust/revoked-eks", { config: { access: READERS, paged: true }, schema: { tags, summary: "revoked EKs: trusted by no method, whatever vouches for them" } }, async (req, reply) => pageList(req, reply, await listRevokedEks(store), (x) => x.ekHash));

  app.post<{ Body: { ekHash: string; reason?: string } }>(
    "/v1/trust/revoked-eks",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "revoke an EK: refused from the next decision on (attestation, token, AK activation, enrollment, key release, DPS registration); its hosts turn unhealthy",
        body: { type: "object", additionalProperties: false, required: ["ekHash"], properties: { ekHash: EK_HASH, reason: { type: "string", maxLength: 256 } } },
      },
    },
    async (req, reply) => {
      const r = await revokeEk(store, { ekHash: req.body.ekHash, reason: req.body.reason ?? null }, caller(req));
      monitor.trustChanged();
      return reply.code(r.added ? 201 : 200).send(r.entry);
    },
  );

  app.delete<{ Params: { ekHash: string } }>(
    "/v1/trust/revoked-eks/:ekHash",
    { config: { access: ADMINS }, schema: { tags, summary: "lift an EK's revocation", params: { type: "object", additionalProperties: false, required: ["ekHash"], properties: { ekHash: EK_HASH } } } },
    async (req, reply) => {
      await unrevokeEk(store, req.params.ekHash, caller(req));
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: PageQuery }>("/v1/trust/allowlist-dirs", { config: { access: READERS, paged: true }, schema: { tags, summary: "AD CS-style allow-list folders, with what each holds now" } }, async (req, reply) => pageList(req, reply, await listAllowlistDirs(store), (x) => x.path));

  app.post<{ Body: { path: string } }>(
    "/v1/trust/allowlist-dirs",
    { config: { access: ADMINS }, schema: { tags, summary: "register an allow-list folder (a path on the service's host, re-read on every decision)", body: PATH } },
    async (req, reply) => {
      const r = await addAllowlistDir(store, req.body.path, caller(req));
      return reply.code(r.added ? 201 : 200).send(r.dir);
    },
  );

  app.delete<{ Body: { path: string } }>("/v1/trust/allowlist-dirs", { config: { access: ADMINS }, schema: { tags, summary: "unregister an allow-list folder", body: PATH } }, async (req, reply) => {
    await removeAllowlistDir(store, req.body.path, caller(req));
    monitor.trustChanged();
    return reply.code(204).send();
  });

  app.get<{ Querystring: PageQuery }>("/v1/trust/cas", { config: { access: READERS, paged: true }, schema: { tags, summary: "EK roots (EKROOT) and intermediates (EKCA)" } }, async (req, reply) => pageList(req, reply, await listCas(store), (x) => x.id));

  app.post<{ Body: { certificates: (string | { certificate: string; kind: EkCaKind })[]; kind?: EkCaKind } }>(
    "/v1/trust/cas",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "import EK roots or intermediates: each a base64 DER/PEM value, or {certificate, kind} with its own role (kind absent everywhere: self-signed = root)",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["certificates"],
          properties: {
            certificates: { type: "array", minItems: 1, maxItems: 4096, items: { anyOf: [B64, { type: "object", additionalProperties: false, required: ["certificate", "kind"], properties: { certificate: B64, kind: KIND } }] } },
            kind: { ...KIND, description: "the role of every certificate, overriding their own" },
          },
        },
      },
    },
    async (req, reply) => {
      const certs = req.body.certificates.map((c, i) => (typeof c === "string" ? decodeBase64(c, `certificates[${i}]`) : { der: decodeBase64(c.certificate, `certificates[${i}].certificate`), kind: c.kind }));
      const r = await importCaCertificates(store, certs, req.body.kind ? { kind: req.body.kind } : {}, caller(req));
      return reply.code(r.added.length > 0 ? 201 : 200).send(r);
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/v1/trust/cas/:id",
    { config: { access: ADMINS }, schema: { tags, summary: "remove an EK root or intermediate", params: { type: "object", additionalProperties: false, required: ["id"], properties: { id: EK_HASH } } } },
    async (req, reply) => {
      await removeCa(store, req.params.id, caller(req));
      monitor.trustChanged();
      return reply.code(204).send();
    },
  );

  app.post<{ Body: { ekHash?: string; ekCertificates?: string[]; intermediates?: string[]; ekPublic?: string; at?: string } }>(
    "/v1/trust/confirm",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "does the configured trust accept this TPM, by which method, and why not",
        body: {
          type: "object",
          additionalProperties: false,
          properties: { ekHash: EK_HASH, ekCertificates: CERTS, intermediates: CERTS, ekPublic: { ...B64, maxLength: 8192, description: "the EK public key: TPM2B_PUBLIC, TPMT_PUBLIC or SubjectPublicKeyInfo (DER or PEM), base64" }, at: { type: "string", format: "date-time" } },
        },
      },
    },
    async (req) => {
      const b = req.body;
      let input: ConfirmInput;
      if (b.ekHash !== undefined) {
        if (b.ekCertificates || b.intermediates || b.ekPublic) throw new TpmTrustError("ERR_VALIDATION", "give either ekHash or ekCertificates/intermediates/ekPublic, not both");
        input = { ekHash: b.ekHash };
      } else {
        input = {
          ekCertificates: (b.ekCertificates ?? []).map((c, i) => decodeBase64(c, `ekCertificates[${i}]`)),
          intermediates: (b.intermediates ?? []).map((c, i) => decodeBase64(c, `intermediates[${i}]`)),
          ...(b.ekPublic ? { ekPublic: ekPublicOf(decodeBase64(b.ekPublic, "ekPublic")) } : {}),
        };
      }
      return confirm(store, input, { ...caller(req), ...(b.at ? { at: new Date(b.at) } : {}) });
    },
  );
};
export default trust;
