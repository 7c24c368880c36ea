import { type Command, Option } from "commander";
import { writeFileSync } from "node:fs";
import { TpmTrustError } from "../../errors.js";
import { caChain, initCa } from "../../ca/authority.js";
import { currentXchg } from "../../ca/xchg.js";
import { certificatePem } from "../../encoding.js";
import { certView, listCertificates } from "../../ca/certificates.js";
import { publishCrl, REVOCATION_REASONS, revokeCertificate } from "../../ca/crl.js";
import { CA_KEY_ALGS, type CaKeyAlg } from "../../ca/signing.js";
import { ATTESTATION_MODES, SUBJECT_SOURCES, getTemplate, listTemplates, putTemplate, removeTemplate, type TemplateView } from "../../ca/templates.js";
import { TRUST_MODELS } from "../../ca/oids.js";
import { inspectRequest, type InspectedRequest } from "../../ca/inspect.js";
import { denyPendingRequest, getPendingRequest, listPendingRequests, type PendingRequestView } from "../../ca/requests.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";

const caller = () => ({ actor: "cli", now: Date.now() });
const csv = (v: string) => v.split(",").map((s) => s.trim()).filter(Boolean);

function templateLine(t: TemplateView): string {
  const ka = t.keyAttestation;
  return `${t.name}\t${ka.mode}\t${ka.trustModels.join(",") || "-"}\t${t.validityDays}d\t${t.keyTypes.join(",")}`;
}

interface TemplateFlags {
  name?: string;
  validityDays?: string;
  keyUsage?: string;
  eku?: string;
  subjectPattern?: string;
  san?: string;
  sanPattern?: string;
  keyTypes?: string;
  attestation?: string;
  trustModels?: string;
  policies?: boolean;
  subjectFrom?: string;
  hosts?: boolean;
  hostClasses?: string;
  hostTags?: string;
  enrollers?: string;
  admins?: boolean;
  anonymous?: boolean;
}

/** A template document from a JSON file, flags, or both (flags override the file). */
function templateDocument(file: string | undefined, f: TemplateFlags): Record<string, unknown> {
  let doc: Record<string, unknown> = {};
  if (file) {
    try {
      doc = JSON.parse(readInput(file, "template").toString("utf8")) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof SyntaxError) throw new TpmTrustError("ERR_PARSE_FORMAT", `${file} is not JSON: ${e.message}`);
      throw e;
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new TpmTrustError("ERR_PARSE_FORMAT", `${file} must hold a JSON object`);
  }
  const set = (path: string[], v: unknown) => {
    let o = doc;
    for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
    o[path[path.length - 1]] = v;
  };
  if (f.name) set(["name"], f.name);
  if (f.validityDays) set(["validityDays"], Number(f.validityDays));
  if (f.keyUsage) set(["keyUsage"], csv(f.keyUsage));
  if (f.eku) set(["extendedKeyUsage"], csv(f.eku));
  if (f.subjectPattern) set(["subject", "pattern"], f.subjectPattern);
  if (f.san) set(["subjectAltNames", "allowed"], csv(f.san));
  if (f.sanPattern) set(["subjectAltNames", "pattern"], f.sanPattern);
  if (f.keyTypes) set(["keyTypes"], csv(f.keyTypes));
  if (f.attestation) set(["keyAttestation", "mode"], f.attestation);
  if (f.trustModels) set(["keyAttestation", "trustModels"], csv(f.trustModels));
  if (f.policies === false) set(["keyAttestation", "includeIssuancePolicies"], false);
  if (f.subjectFrom) set(["subjectFrom"], f.subjectFrom);
  if (f.hosts === false) set(["requesters", "hosts"], false);
  if (f.hostClasses) set(["requesters", "hostClasses"], csv(f.hostClasses));
  if (f.hostTags) set(["requesters", "hostTags"], csv(f.hostTags));
  if (f.enrollers) set(["requesters", "enrollers"], csv(f.enrollers));
  if (f.admins === false) set(["requesters", "admins"], false);
  if (f.anonymous) set(["requesters", "anonymous"], true);
  if (doc.name === undefined) throw new TpmTrustError("ERR_USAGE", "give a template JSON file or --name");
  return doc;
}

export function register(program: Command): void {
  const ca = program.command("ca").description("the key attestation CA: certificates only for keys a trusted TPM protects (AD CS TPM key attestation)");

  ca.command("init")
    .description("create the root and the issuing CA (keys: PKCS#8 files with mode 0600)")
    .addOption(new Option("--alg <alg>", "CA key algorithm").choices([...CA_KEY_ALGS]).default("ecdsa-p256"))
    .option("--key-dir <dir>", "where the CA keys are written (default: ca/ beside the SQLite database, or under $TPMTRUST_STATE_DIR)")
    .option("--key-server <name>", "seal the CA keys with this key server (tpmtrust keys servers …) instead of writing key files")
    .option("--any-policy", "the issuing CA carries anyPolicy instead of the three attestation policies")
    .option("--org <name>", "organisation in the CA subjects", "tpmtrust")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { alg: CaKeyAlg; keyDir?: string; keyServer?: string; anyPolicy?: boolean; org: string; db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const r = await initCa(store, { alg: o.alg, keyDir: o.keyDir, keyServer: o.keyServer, anyPolicy: o.anyPolicy, organization: o.org, ...caller() });
          if (o.json) return printJson(r);
          for (const a of [r.root, r.issuing]) process.stdout.write(`${a.kind}\t${a.subject}\t${a.notAfter}\t${a.keyRef.split(":").slice(0, 2).join(":")}\n`);
          process.stdout.write(`issuing CA policies: ${r.issuing.policies.join(", ")}\n`);
        }),
      ),
    );

  const templates = ca.command("templates").description("certificate templates");
  templates
    .command("add [file]")
    .description("create or replace a template from a JSON file (- for stdin) and/or flags")
    .option("--name <name>", "template name")
    .option("--validity-days <n>", "certificate lifetime in days (default 365)")
    .option("--key-usage <list>", "digitalSignature,keyEncipherment,… (default digitalSignature)")
    .option("--eku <list>", "clientAuth,serverAuth,… or OIDs (default clientAuth)")
    .option("--subject-pattern <regex>", "regular expression the subject (e.g. CN=host1, O=x) must match")
    .option("--san <types>", "subjectAltName types a CSR may request: dns,ip,email,uri (default none)")
    .option("--san-pattern <regex>", "regular expression every requested SAN value must match")
    .option("--key-types <list>", "rsa-2048,ecdsa-p256,… (default rsa-2048,ecdsa-p256)")
    .addOption(new Option("--attestation <mode>", "key attestation mode").choices([...ATTESTATION_MODES]))
    .option("--trust-models <list>", `any of ${TRUST_MODELS.join(",")} (default ek-cert when attestation is on)`)
    .option("--no-policies", "do not stamp the attestation issuance policies into certificates")
    .addOption(new Option("--subject-from <source>", "where subject and SANs come from: the attested host's name, or the CSR (checked against the patterns and an attested host's name); default host when attestation is required").choices([...SUBJECT_SOURCES]))
    .option("--host-classes <list>", "requesters: attested hosts of these hardware classes (or --host-tags); default any host")
    .option("--host-tags <list>", "requesters: attested hosts carrying one of these tags")
    .option("--no-hosts", "requesters: no attested host may enroll on its own")
    .option("--enrollers <list>", "requesters: identities of enroller tokens (admin token create --role enroller --identity …)")
    .option("--no-admins", "requesters: admin tokens may not enroll")
    .option("--anonymous", "requesters: admit requests with neither a token nor valid attestation")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((file: string | undefined, o: TemplateFlags & { db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const t = await putTemplate(store, templateDocument(file, o), caller());
          if (o.json) return printJson(t);
          process.stdout.write(templateLine(t) + "\n");
        }),
      ),
    );
  templates
    .command("list")
    .description("list templates: name, attestation mode, trust models, validity, key types")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const list = await listTemplates(store);
          if (o.json) return printJson(list);
          for (const t of list) process.stdout.write(templateLine(t) + "\n");
        }),
      ),
    );
  templates
    .command("show <name>")
    .description("print a template (JSON)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(action((name: string, o: { db?: string }) => withStore(o.db, async (store) => printJson(await getTemplate(store, name)))));
  templates
    .command("remove <name>")
    .description("remove a template")
    .option("--db <url>", DB_OPTION_HELP)
    .action(action((name: string, o: { db?: string }) => withStore(o.db, (store) => removeTemplate(store, name, caller()))));

  const certs = ca.command("certs").description("issued certificates");
  certs
    .command("list")
    .description("list issued certificates, newest first")
    .option("--template <name>", "only this template's")
    .option("--host <name>", "only this host's")
    .option("--revoked", "only revoked ones")
    .option("--all", "include AK certificates of the attestation CA")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { template?: string; host?: string; revoked?: boolean; all?: boolean; db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const list = await listCertificates(store, { template: o.template, host: o.host, ...(o.revoked ? { revoked: true } : {}), all: o.all });
          if (o.json) return printJson(list);
          for (const c of list) {
            const policies = (c.attestation?.policies as string[] | undefined)?.join(",") || "-";
            process.stdout.write(`${c.serial}\t${c.subject}\t${c.template ?? "-"}\t${c.host ?? "-"}\t${c.notAfter}\t${c.revokedAt ? `revoked:${c.revocationReason}` : "valid"}\t${policies}\n`);
          }
        }),
      ),
    );
  certs
    .command("revoke <serial>")
    .description("revoke a certificate and publish a new CRL")
    .addOption(new Option("--reason <reason>", "RFC 5280 reason").choices(Object.keys(REVOCATION_REASONS)).default("unspecified"))
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((serial: string, o: { reason: string; db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const c = await revokeCertificate(store, serial, { reason: o.reason, ...caller() });
          if (o.json) return printJson(certView(c));
          process.stdout.write(`${c.serial}\trevoked\t${o.reason}\n`);
        }),
      ),
    );

  const requests = ca.command("requests").description("key attestation requests waiting for the answer to their EK challenge (POST /v1/ca/cmc)");
  const requestLine = (r: PendingRequestView) => `${r.requestId}\t${r.state}\t${r.template}\t${r.subject}\t${r.requester}\t${r.ekHash}\t${r.expiresAt}\n`;
  const requestId = (id: string): number => {
    if (!/^[1-9][0-9]{0,9}$/.test(id)) throw new TpmTrustError("ERR_USAGE", `a request id is a positive number, not ${JSON.stringify(id)}`);
    return Number(id);
  };
  requests
    .command("list")
    .description("requests waiting for their answer, newest first: id, state, template, subject, requester, EK hash, expiry")
    .option("--all", "also the answered and expired ones")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { all?: boolean; db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const list = await listPendingRequests(store, { all: o.all, now: Date.now() });
          if (o.json) return printJson(list);
          for (const r of list) process.stdout.write(requestLine(r));
        }),
      ),
    );
  requests
    .command("show <id>")
    .description("one request: who asked, template, subject, EK hash and certificates, AIK Name, when it was made and expires")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((id: string, o: { db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const r = await getPendingRequest(store, requestId(id), Date.now());
          if (o.json) return printJson(r);
          for (const [k, v] of Object.entries(r)) process.stdout.write(`${k}\t${v ?? "-"}\n`);
        }),
      ),
    );
  requests
    .command("deny <id>")
    .description("deny a request waiting for its answer (as certutil -deny): it is removed and its answer finds no request; audited as event 53")
    .option("--reason <text>", "why, for the audit log")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((id: string, o: { reason?: string; db?: string; json?: boolean }) =>
        withStore(o.db, async (store) => {
          const r = await denyPendingRequest(store, requestId(id), { reason: o.reason ?? null, ...caller() });
          if (o.json) return printJson(r);
          process.stdout.write(`${r.requestId}\tdenied\n`);
        }),
      ),
    );

  ca.command("crl")
    .description("publish a new CRL now and write it (DER)")
    .requiredOption("--out <file>", "where to write the CRL")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((o: { out: string; db?: string }) =>
        withStore(o.db, async (store) => {
          const crl = await publishCrl(store, Date.now());
          writeFileSync(o.out, crl.der);
          process.stdout.write(`CRL ${crl.number} (next update ${new Date(crl.nextUpdate).toISOString()}) -> ${o.out}\n`);
        }),
      ),
    );

  ca.command("xchg")
    .description("the CA exchange certificate Windows clients encrypt their EK info to (issued or renewed when needed), then the CA chain (PEM)")
    .option("--out <file>", "write the PEM here instead of stdout")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((o: { out?: string; db?: string }) =>
        withStore(o.db, async (store) => {
          const x = await currentXchg(store, caller());
          const pem = certificatePem(Buffer.from(x.certificate.rawData), ...(await caChain(store)));
          if (o.out) writeFileSync(o.out, pem);
          else process.stdout.write(pem);
        }),
      ),
    );

  ca.command("inspect-request <file>")
    .description("show a PKCS#10 or CMC request (PEM or DER) as the CA sees it: subject, SANs, key, template, OS, CSP/KSP, signature, key attestation, EK info (exit 0 ok, 1 attestation does not verify, 2 unusable input)")
    .option("--json", "print one JSON object")
    .action(
      action(async (file: string, o: { json?: boolean }) => {
        const r = await inspectRequest(readInput(file, "FILE"));
        if (o.json) printJson(r);
        else process.stdout.write(inspectText(r));
        return r.attestation && !r.attestation.verified ? 1 : 0;
      }),
    );
}

function inspectText(r: InspectedRequest): string {
  const lines = [
    `format\t${r.format === "cmc" ? "CMC Full PKI Request" : "PKCS#10"}`,
    `subject\t${r.subject || "(empty)"}`,
    ...r.sans.map((s) => `san\t${s.type}:${s.value}`),
    `key\t${r.key.type} (SPKI SHA-256 ${r.key.spkiSha256})`,
    `template\t${r.template ? [r.template.name, r.template.oid && `${r.template.oid} v${r.template.majorVersion ?? "?"}.${r.template.minorVersion ?? 0}`].filter(Boolean).join(" ") : "-"}`,
    `os\t${r.osVersion ?? "-"}`,
    `csp\t${r.csp ?? r.ksp ?? "-"}`,
    `signature\t${r.requestSignatureValid ? "valid" : "INVALID"}`,
  ];
  const a = r.attestation;
  if (!a) lines.push("attestation\tnone");
  else {
    const v = (c: { verified: boolean; code?: string; reason?: string }) => (c.verified ? "verified" : `FAILED ${c.code}: ${c.reason}`);
    lines.push(`attestation\t${a.verified ? "verified" : "FAILED"} (KAST ${a.oid})`);
    lines.push(`aik\t${a.aik.type} ${a.aik.name}: ${v(a.aik)}`);
    lines.push(`attested key\t${a.key.type} ${a.key.name} ${a.key.signatureScheme ?? ""}: ${v(a.key)}${a.key.matchesRequestKey ? "" : "; NOT the request's key"}`);
  }
  lines.push(r.ekInfo ? `ek info\tencrypted to ${r.ekInfo.recipient.issuer ?? "?"} serial ${r.ekInfo.recipient.serial ?? r.ekInfo.recipient.subjectKeyIdentifier}` : "ek info\tnone");
  return lines.join("\n") + "\n";
}
