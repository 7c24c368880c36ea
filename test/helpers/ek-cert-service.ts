/**
 * A loopback stand-in for a TPM maker's off-chip EK certificate service (Intel PTT, AMD fTPM):
 * answers from `routes` by the path after /ek/, 404 otherwise, and records each path asked.
 */
import { createServer, type Server } from "node:http";

export interface FakeEkCertService {
  /** the base URL to give as --ek-cert-url */
  base: string;
  asked: string[];
  routes: Map<string, { type: string; body: Buffer }>;
  close(): Promise<void>;
}

export async function fakeEkCertService(): Promise<FakeEkCertService> {
  const asked: string[] = [];
  const routes = new Map<string, { type: string; body: Buffer }>();
  const server: Server = createServer((req, res) => {
    const path = req.url!.replace(/^\/ek\//, "");
    asked.push(path);
    const r = routes.get(path);
    if (!r) return void res.writeHead(404).end("not found");
    res.writeHead(200, { "content-type": r.type }).end(r.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { base: `http://127.0.0.1:${port}/ek/`, asked, routes, close: () => new Promise((r) => server.close(() => r())) };
}

/** Intel's answer: JSON whose `certificate` is the DER in base64url (the member tpm2-tools reads), next to `pubhash`. */
export const intelAnswer = (path: string, der: Buffer) => ({
  type: "application/json",
  body: Buffer.from(JSON.stringify({ pubhash: decodeURIComponent(path), certificate: der.toString("base64url") })),
});
