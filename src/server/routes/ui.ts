/**
 * The operator dashboard at /ui: plain ES modules and CSS from web/ (no build step, nothing from
 * outside), loaded into memory once at start. The pages call the JSON API with the admin or auditor
 * token the operator signs in with; /v1/whoami tells them the token's role.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyReply } from "fastify";
import type { RouteModule } from "../app.js";
import { READERS } from "../auth.js";
import { TpmTrustError } from "../../errors.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** Scripts, styles and API calls from this origin only; no framing, no referrer leaks. */
const HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-cache",
};

/** The web/ folder: found upwards from this module, so it works from src/ (tsx) and from a build. */
function webRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, "web", "index.html"))) return join(d, "web");
    if (dirname(d) === d) throw new TpmTrustError("ERR_IO", "the dashboard assets (web/index.html) are missing from this installation");
  }
}

function loadAssets(root: string): Map<string, { body: Buffer; type: string }> {
  const out = new Map<string, { body: Buffer; type: string }>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (TYPES[extname(name)]) out.set(relative(root, p).split(sep).join("/"), { body: readFileSync(p), type: TYPES[extname(name)] });
    }
  };
  walk(root);
  return out;
}

const ui: RouteModule = (app) => {
  const assets = loadAssets(webRoot());
  const send = (reply: FastifyReply, path: string) => {
    const a = assets.get(path);
    if (!a) throw new TpmTrustError("ERR_NOT_FOUND", `no dashboard asset ${JSON.stringify(path)}`);
    return reply.headers(HEADERS).type(a.type).send(a.body);
  };
  const hide = { hide: true };

  app.get("/ui", { config: { access: "public" }, schema: hide }, async (_req, reply) => reply.redirect("/ui/", 302));
  app.get("/ui/", { config: { access: "public" }, schema: hide }, async (_req, reply) => send(reply, "index.html"));
  app.get<{ Params: { "*": string } }>("/ui/*", { config: { access: "public" }, schema: hide }, async (req, reply) => send(reply, req.params["*"]));

  app.get(
    "/v1/whoami",
    {
      config: { access: READERS },
      schema: {
        tags: ["admin"],
        summary: "the calling API token's role and the principal it names, if any (the dashboard shows write actions to admins only)",
        response: {
          200: {
            type: "object",
            additionalProperties: false,
            required: ["role", "tokenId"],
            properties: { role: { type: "string", enum: ["admin", "auditor"] }, tokenId: { type: "string" }, name: { type: "string", description: "the principal (admin token create --name); absent for an unnamed token" } },
          },
        },
      },
    },
    async (req) => ({ role: req.principal!.role, tokenId: req.principal!.tokenId, ...(req.principal!.name !== undefined ? { name: req.principal!.name } : {}) }),
  );
};
export default ui;
