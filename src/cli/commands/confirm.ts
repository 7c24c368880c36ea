import type { Command } from "commander";
import type { ConfirmResult } from "../../trust/trust.js";
import { loadCertificate } from "../../verify/ek/index.js";
import { parseKeyInput } from "../../verify/inputs.js";
import { atOption } from "../ak-chain.js";
import { hexArg, readInput } from "../files.js";
import { usage } from "../run.js";
import { adminCommand, type AdminOptions } from "../admin-client.js";

interface Opts extends AdminOptions {
  ekHash?: string;
  ekCert?: string;
  ekPublic?: string;
  intermediates?: string[];
  at?: string;
  json?: boolean;
}

/** The body of POST /v1/trust/confirm; the files are read and checked here first. */
function input(o: Opts): Record<string, unknown> {
  const at = { at: atOption(o.at).toISOString() };
  if (o.ekHash !== undefined) {
    if (o.ekCert || o.ekPublic || o.intermediates) throw usage("--ek-hash stands alone: give it, or --ek-cert/--ek-public");
    const h = hexArg(o.ekHash, "--ek-hash");
    if (h.length !== 32) throw usage(`--ek-hash must be 64 hex digits (SHA-256), got ${h.length * 2}`);
    return { ekHash: h.toString("hex"), ...at };
  }
  if (!o.ekCert && !o.ekPublic) throw usage("give --ek-hash HEX, --ek-cert FILE or --ek-public FILE");
  if (o.intermediates && !o.ekCert) throw usage("--intermediates needs --ek-cert");
  const cert = o.ekCert ? readInput(o.ekCert, "--ek-cert") : undefined;
  if (cert) loadCertificate(cert); // an unreadable certificate is unusable input (exit 2), not an untrusted TPM
  const pub = o.ekPublic ? readInput(o.ekPublic, "--ek-public") : undefined;
  if (pub) parseKeyInput(pub, "--ek-public");
  const b64 = (b: Buffer) => b.toString("base64");
  return {
    ekCertificates: cert ? [b64(cert)] : [],
    intermediates: (o.intermediates ?? []).map((f) => b64(readInput(f, "--intermediates"))),
    ...(pub ? { ekPublic: b64(pub) } : {}),
    ...at,
  };
}

function print(r: ConfirmResult): void {
  const out = [`trusted: ${r.trusted ? `yes, by ${r.passed.join(" and ")}` : "no"}`];
  if (r.ekHash) out.push(`ekHash: ${r.ekHash}`);
  for (const [m, v] of Object.entries(r.methods)) out.push(`${m}: ${v.passed ? "passed" : `failed ${v.code}`}: ${v.reason}`);
  for (const c of r.certificates) {
    if (c.path) out.push(`  path: ${c.path.join(" <- ")}`);
    for (const t of c.tolerances ?? []) out.push(`  tolerance ${t.code}: ${t.certificate}${t.detail ? ` (${t.detail})` : ""}`);
  }
  out.push(`at: ${r.at}`);
  for (const w of r.warnings) out.push(`warning: ${w}`);
  process.stdout.write(out.join("\n") + "\n");
}

/** `tpmtrust confirm`: the Confirm-CAEndorsementKeyInfo of tpmtrust, through POST /v1/trust/confirm. Exit 0 trusted, 1 not trusted, 2 unusable input. */
export function register(program: Command): void {
  adminCommand(program, "confirm", "does the configured EK trust accept this TPM, by which method (ek-key, ek-cert), and why not; exit 0 trusted, 1 not", {
    options: (c) =>
      c
        .option("--ek-hash <hex>", "EK hash: SHA-256 of the EK's RSAPublicKey DER (Get-TpmEndorsementKeyInfo PublicKeyHash)")
        .option("--ek-cert <file>", "EK certificate (DER or PEM; NV header and padding tolerated)")
        .option("--intermediates <files...>", "intermediate CA certificates for path building (DER, PEM or bundles)")
        .option("--ek-public <file>", "EK public key: TPM2B_PUBLIC, TPMT_PUBLIC or SPKI (checked against the allow-list and the certificate)")
        .option("--at <iso8601>", "validate certificates at this time (default: now)"),
    run: (c, _a, o: Opts) => c.call<ConfirmResult>("POST", "/v1/trust/confirm", input(o)),
    print: (r) => {
      print(r);
      return r.trusted ? 0 : 1;
    },
    exit: (r) => (r.trusted ? 0 : 1),
  });
}
