import type { Command } from "commander";
import { confirm, type ConfirmInput, type ConfirmResult } from "../../trust/trust.js";
import { loadCertificate } from "../../verify/ek/index.js";
import { parseKeyInput } from "../../verify/inputs.js";
import { atOption } from "../ak-chain.js";
import { hexArg, readInput } from "../files.js";
import { action, printJson, usage } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

interface Opts {
  ekHash?: string;
  ekCert?: string;
  ekPublic?: string;
  intermediates?: string[];
  at?: string;
  db?: string;
  json?: boolean;
}

function input(o: Opts): ConfirmInput {
  if (o.ekHash !== undefined) {
    if (o.ekCert || o.ekPublic || o.intermediates) throw usage("--ek-hash stands alone: give it, or --ek-cert/--ek-public");
    const h = hexArg(o.ekHash, "--ek-hash");
    if (h.length !== 32) throw usage(`--ek-hash must be 64 hex digits (SHA-256), got ${h.length * 2}`);
    return { ekHash: h.toString("hex") };
  }
  if (!o.ekCert && !o.ekPublic) throw usage("give --ek-hash HEX, --ek-cert FILE or --ek-public FILE");
  if (o.intermediates && !o.ekCert) throw usage("--intermediates needs --ek-cert");
  const cert = o.ekCert ? readInput(o.ekCert, "--ek-cert") : undefined;
  if (cert) loadCertificate(cert); // an unreadable certificate is unusable input (exit 2), not an untrusted TPM
  const pub = o.ekPublic ? parseKeyInput(readInput(o.ekPublic, "--ek-public"), "--ek-public") : undefined;
  return {
    ekCertificates: cert ? [cert] : [],
    intermediates: (o.intermediates ?? []).map((f) => readInput(f, "--intermediates")),
    ...(pub ? { ekPublic: pub.public ?? pub.key } : {}),
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

/** `tpmtrust confirm`: the Confirm-CAEndorsementKeyInfo of tpmtrust. Exit 0 trusted, 1 not trusted, 2 unusable input. */
export function register(program: Command): void {
  program
    .command("confirm")
    .description("does the configured EK trust accept this TPM, by which method (ek-key, ek-cert), and why not; exit 0 trusted, 1 not")
    .option("--ek-hash <hex>", "EK hash: SHA-256 of the EK's RSAPublicKey DER (Get-TpmEndorsementKeyInfo PublicKeyHash)")
    .option("--ek-cert <file>", "EK certificate (DER or PEM; NV header and padding tolerated)")
    .option("--intermediates <files...>", "intermediate CA certificates for path building (DER, PEM or bundles)")
    .option("--ek-public <file>", "EK public key: TPM2B_PUBLIC, TPMT_PUBLIC or SPKI (checked against the allow-list and the certificate)")
    .option("--at <iso8601>", "validate certificates at this time (default: now)")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print one JSON object")
    .action(
      action(async (o: Opts) => {
        const i = input(o);
        const at = atOption(o.at);
        const r = await withStore(o.db, (store) => confirm(store, i, { actor: "cli", now: Date.now(), at }));
        if (o.json) printJson(r);
        else print(r);
        return r.trusted ? 0 : 1;
      }),
    );
}
