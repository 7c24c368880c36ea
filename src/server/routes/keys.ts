/**
 * Key release (docs/api.md § Key providers): key servers, trusted key providers and trusted
 * clusters for admins; encrypt, decrypt, data keys and release to the TPM for hosts that present
 * their attestation token.
 */
import type { FastifyRequest } from "fastify";
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS, bearer, READERS } from "../auth.js";
import { metrics, reasonOf } from "../metrics.js";
import { BASE64_PATTERN, decodeBase64 } from "../../encoding.js";
import {
  addKeyServer,
  authorizeHost,
  CLUSTER_NAME_PATTERN,
  createProvider,
  dataKey,
  DATA_KEY_SIZES,
  decrypt,
  encrypt,
  getCluster,
  getProvider,
  KEY_ID_PATTERN,
  KEY_SERVER_KINDS,
  KEY_SERVER_NAME_PATTERN,
  listClusters,
  listKeyServers,
  listProviders,
  MAX_CONTEXT,
  MAX_PLAINTEXT,
  PROVIDER_NAME_PATTERN,
  putCluster,
  release,
  removeCluster,
  retireVersion,
  rotateProvider,
  setProviderEnabled,
  type HostGrant,
  type KeyOperation,
} from "../../keys/index.js";
import { pageList, type PageQuery } from "../paging.js";

const tags = ["keys"];
const b64 = (maxLength: number) => ({ type: "string", minLength: 4, maxLength, pattern: BASE64_PATTERN }) as const;
const nameParams = (pattern: string) => ({ type: "object", additionalProperties: false, required: ["name"], properties: { name: { type: "string", pattern } } }) as const;
const PROVIDER_PARAMS = nameParams(PROVIDER_NAME_PATTERN);
const CLUSTER_PARAMS = nameParams(CLUSTER_NAME_PATTERN);
const HOST_OP_PARAMS = { type: "object", additionalProperties: false, required: ["provider"], properties: { provider: { type: "string", pattern: PROVIDER_NAME_PATTERN } } } as const;
const CONTEXT = { type: "string", maxLength: MAX_CONTEXT, description: "encryption context bound into the AAD; the same string must be given to decrypt" } as const;
const SIZE = { type: "integer", minimum: DATA_KEY_SIZES.min, maximum: DATA_KEY_SIZES.max, description: `bytes (default ${DATA_KEY_SIZES.default})` } as const;
const NAMES = { type: "array", maxItems: 1000, items: { type: "string", minLength: 1, maxLength: 128 } } as const;

const ctx = (c: string | undefined) => (c === undefined ? undefined : Buffer.from(c, "utf8"));

const keys: RouteModule = (app, { store, now, attest }) => {
  const caller = (req: FastifyRequest) => ({ actor: actorOf(req), now: now() });
  /** A host operation: authorised, counted and timed by operation, key server kind ("none" when refused before) and outcome. */
  const hostOp = async <T>(req: FastifyRequest<{ Params: { provider: string } }>, operation: KeyOperation, fn: (g: HostGrant) => Promise<T>): Promise<T> => {
    const end = metrics.keyOperationSeconds.startTimer({ operation });
    let kind = "none";
    try {
      const g = await authorizeHost(store, { token: bearer(req), provider: req.params.provider, operation, now: now(), issuer: attest.issuer });
      kind = g.keyServer.kind;
      const r = await fn(g);
      metrics.keyOperations.inc({ operation, provider: kind, outcome: "success", reason: "none" });
      return r;
    } catch (e) {
      metrics.keyOperations.inc({ operation, provider: kind, outcome: "failure", reason: reasonOf(e) });
      throw e;
    } finally {
      end({ provider: kind });
    }
  };

  // ---- key servers (admin)
  app.get<{ Querystring: PageQuery }>("/v1/keys/servers", { config: { access: READERS, paged: true }, schema: { tags, summary: "key servers (their settings name where secrets are, never the secrets)" } }, async (req, reply) => pageList(req, reply, await listKeyServers(store), (x) => x.name));
  app.post<{ Body: { name: string; kind: string; config?: Record<string, unknown> } }>(
    "/v1/keys/servers",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "add a key server; it is opened and checked (master key readable, token logs in) before it is stored",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name", "kind"],
          properties: {
            name: { type: "string", pattern: KEY_SERVER_NAME_PATTERN },
            kind: { type: "string", enum: Object.keys(KEY_SERVER_KINDS) },
            config: {
              type: "object",
              description: "local: {masterKeyEnv} | {masterKeyFile}; pkcs11: {module, tokenLabel | slot, pinEnv | pinFile}",
              additionalProperties: { anyOf: [{ type: "string", maxLength: 4096 }, { type: "integer" }] },
            },
          },
        },
      },
    },
    async (req, reply) => reply.code(201).send(await addKeyServer(store, req.body, caller(req))),
  );

  // ---- trusted key providers (admin)
  app.get<{ Querystring: PageQuery }>("/v1/keys/providers", { config: { access: READERS, paged: true }, schema: { tags, summary: "key providers with their versions and the clusters that may use them" } }, async (req, reply) => pageList(req, reply, await listProviders(store), (x) => x.name));
  app.get<{ Params: { name: string } }>("/v1/keys/providers/:name", { config: { access: READERS }, schema: { tags, summary: "one key provider", params: PROVIDER_PARAMS } }, async (req) =>
    getProvider(store, req.params.name),
  );
  app.post<{ Body: { name: string; keyServer?: string; primaryKeyId?: string } }>(
    "/v1/keys/providers",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "create a trusted key provider; its key server makes key version 1 (keyServer defaults to the built-in local store)",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name"],
          properties: { name: { type: "string", pattern: PROVIDER_NAME_PATTERN }, keyServer: { type: "string", pattern: KEY_SERVER_NAME_PATTERN }, primaryKeyId: { type: "string", pattern: KEY_ID_PATTERN } },
        },
      },
    },
    async (req, reply) => reply.code(201).send(await createProvider(store, req.body, caller(req))),
  );
  for (const [action, summary] of [
    ["disable", "disable a provider: every host operation is refused with ERR_DISABLED"],
    ["enable", "enable a disabled provider"],
    ["rotate", "make a new key version current: it encrypts from now on; older versions still decrypt until retired"],
  ] as const) {
    app.post<{ Params: { name: string } }>(`/v1/keys/providers/:name/${action}`, { config: { access: ADMINS }, schema: { tags, summary, params: PROVIDER_PARAMS } }, async (req) => {
      if (action === "rotate") return rotateProvider(store, req.params.name, caller(req));
      return setProviderEnabled(store, req.params.name, action === "enable", caller(req));
    });
  }
  app.post<{ Params: { name: string; version: string } }>(
    "/v1/keys/providers/:name/versions/:version/retire",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "retire an old key version: envelopes it sealed no longer decrypt (ERR_KEY_RETIRED)",
        params: { type: "object", additionalProperties: false, required: ["name", "version"], properties: { name: { type: "string", pattern: PROVIDER_NAME_PATTERN }, version: { type: "string", pattern: "^[1-9][0-9]{0,8}$" } } },
      },
    },
    async (req) => retireVersion(store, req.params.name, Number(req.params.version), caller(req)),
  );

  // ---- trusted clusters (admin)
  app.get<{ Querystring: PageQuery }>("/v1/keys/clusters", { config: { access: READERS, paged: true }, schema: { tags, summary: "trusted clusters: host selectors and the providers their hosts may use" } }, async (req, reply) => pageList(req, reply, await listClusters(store), (x) => x.name));
  app.get<{ Params: { name: string } }>("/v1/keys/clusters/:name", { config: { access: READERS }, schema: { tags, summary: "one trusted cluster", params: CLUSTER_PARAMS } }, async (req) => getCluster(store, req.params.name));
  app.put<{ Params: { name: string }; Body: { hosts?: string[]; hardwareClasses?: string[]; tags?: string[]; providers: string[] } }>(
    "/v1/keys/clusters/:name",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "create or replace a trusted cluster: hosts by name, hardware class or tag, and the providers they may use",
        params: CLUSTER_PARAMS,
        body: { type: "object", additionalProperties: false, required: ["providers"], properties: { hosts: NAMES, hardwareClasses: NAMES, tags: NAMES, providers: NAMES } },
      },
    },
    async (req) => putCluster(store, { name: req.params.name, ...req.body }, caller(req)),
  );
  app.delete<{ Params: { name: string } }>("/v1/keys/clusters/:name", { config: { access: ADMINS }, schema: { tags, summary: "remove a trusted cluster", params: CLUSTER_PARAMS } }, async (req, reply) => {
    await removeCluster(store, req.params.name, caller(req));
    return reply.code(204).send();
  });

  // ---- host operations: Authorization: Bearer <attestation token>
  const hostRoute = { config: { access: "public" as const } };
  app.post<{ Params: { provider: string }; Body: { plaintext: string; context?: string } }>(
    "/v1/keys/:provider/encrypt",
    {
      ...hostRoute,
      schema: {
        tags,
        summary: "encrypt with the provider's current key version (host with a valid attestation token, in a cluster allowed to use the provider)",
        params: HOST_OP_PARAMS,
        body: { type: "object", additionalProperties: false, required: ["plaintext"], properties: { plaintext: b64(Math.ceil(MAX_PLAINTEXT / 3) * 4), context: CONTEXT } },
      },
    },
    (req) =>
      hostOp(req, "encrypt", async (g) => {
        const r = await encrypt(store, g, { plaintext: decodeBase64(req.body.plaintext, "plaintext"), context: ctx(req.body.context), now: now() });
        return { ciphertext: r.ciphertext.toString("base64"), keyVersion: r.keyVersion };
      }),
  );
  app.post<{ Params: { provider: string }; Body: { ciphertext: string; context?: string } }>(
    "/v1/keys/:provider/decrypt",
    {
      ...hostRoute,
      schema: {
        tags,
        summary: "decrypt an envelope of this provider with the key version it names (refused once that version is retired)",
        params: HOST_OP_PARAMS,
        body: { type: "object", additionalProperties: false, required: ["ciphertext"], properties: { ciphertext: b64(Math.ceil((MAX_PLAINTEXT + 1024) / 3) * 4), context: CONTEXT } },
      },
    },
    (req) =>
      hostOp(req, "decrypt", async (g) => {
        const r = await decrypt(store, g, { ciphertext: decodeBase64(req.body.ciphertext, "ciphertext"), context: ctx(req.body.context), now: now() });
        return { plaintext: r.plaintext.toString("base64"), keyVersion: r.keyVersion };
      }),
  );
  app.post<{ Params: { provider: string }; Body: { size?: number; context?: string } }>(
    "/v1/keys/:provider/data-key",
    {
      ...hostRoute,
      schema: {
        tags,
        summary: "a new data key: in clear, and wrapped by the provider (decrypt opens the wrapped key again)",
        params: HOST_OP_PARAMS,
        body: { type: "object", additionalProperties: false, properties: { size: SIZE, context: CONTEXT } },
      },
    },
    (req) =>
      hostOp(req, "data-key", async (g) => {
        const r = await dataKey(store, g, { size: req.body?.size, context: ctx(req.body?.context), now: now() });
        return { plaintext: r.plaintext.toString("base64"), wrappedKey: r.wrappedKey.toString("base64"), keyVersion: r.keyVersion };
      }),
  );
  app.post<{ Params: { provider: string }; Body: { srk: { public: string; attest: string; signature: string }; wrappedKey?: string; size?: number; context?: string } }>(
    "/v1/keys/:provider/release",
    {
      ...hostRoute,
      schema: {
        tags,
        summary: "release a key to the host's TPM: a duplication blob of a sealed data object for TPM2_Import under the SRK that one of the host's bound AKs certified",
        params: HOST_OP_PARAMS,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["srk"],
          properties: {
            srk: {
              type: "object",
              additionalProperties: false,
              required: ["public", "attest", "signature"],
              properties: { public: b64(2048), attest: b64(2048), signature: b64(2048) },
              description: "the SRK's TPM2B_PUBLIC, and the TPMS_ATTEST and TPMT_SIGNATURE of TPM2_Certify(SRK) by a bound AK",
            },
            wrappedKey: { ...b64(1024), description: "a wrapped key (from data-key or an earlier release) to release again; absent: a new key" },
            size: SIZE,
            context: CONTEXT,
          },
        },
      },
    },
    (req) =>
      hostOp(req, "release", async (g) => {
        const b = req.body;
        const srk = { public: decodeBase64(b.srk.public, "srk.public"), attest: decodeBase64(b.srk.attest, "srk.attest"), signature: decodeBase64(b.srk.signature, "srk.signature") };
        const r = await release(store, g, { srk, wrappedKey: b.wrappedKey === undefined ? undefined : decodeBase64(b.wrappedKey, "wrappedKey"), size: b.size, context: ctx(b.context), now: now() });
        return {
          keyVersion: r.keyVersion,
          wrappedKey: r.wrappedKey.toString("base64"),
          srkNameHex: r.srkName.toString("hex"),
          import: { public: r.duplicate.public.toString("base64"), duplicate: r.duplicate.duplicate.toString("base64"), inSymSeed: r.duplicate.inSymSeed.toString("base64") },
          objectNameHex: r.duplicate.name.toString("hex"),
        };
      }),
  );
};
export default keys;
