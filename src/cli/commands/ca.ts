import { type Command, Option } from "commander";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { TpmTrustError } from "../../errors.js";
import type { CaView } from "../../ca/authority.js";
import type { CertView } from "../../ca/certificates.js";
import { REVOCATION_REASONS } from "../../ca/crl.js";
import { CA_KEY_ALGS, type CaKeyAlg } from "../../ca/signing.js";
import { ATTESTATION_MODES, SUBJECT_SOURCES, type TemplateView } from "../../ca/templates.js";
import { TRUST_MODELS } from "../../ca/oids.js";
import { inspectRequest, type InspectedRequest } from "../../ca/inspect.js";
import type { PendingRequestView } from "../../ca/requests.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";
import { adminCommand, seg, type AdminOptions } from "../admin-client.js";

/** Writes `data` to --out (ERR_IO when it cannot). */
function writeOut(out: string, data: string | Buffer): void {
  try {
    writeFileSync(out, data);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `--out: cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path: out });
  }
}
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
  const ca = program.command("ca").description("the key attestation CA: certificates only for keys a trusted TPM protects (AD CS TPM key attestation); on the running service with --server, else on the local database");

  adminCommand(ca, "init", "create the root and the issuing CA (keys: PKCS#8 files with mode 0600 on the service's machine, or sealed by a key server)", {
    options: (c) =>
      c
        .addOption(new Option("--alg <alg>", "CA key algorithm").choices([...CA_KEY_ALGS]).default("ecdsa-p256"))
        .option("--key-dir <dir>", "where the CA keys are written (default: ca/ beside the SQLite database, or under $TPMTRUST_STATE_DIR); without --server only")
        .option("--key-server <name>", "seal the CA keys with this key server (tpmtrust keys servers …) instead of writing key files")
        .option("--any-policy", "the issuing CA carries anyPolicy instead of the three attestation policies")
        .option("--org <name>", "organisation in the CA subjects", "tpmtrust"),
    run: (c, _a, o: AdminOptions & { alg: CaKeyAlg; keyDir?: string; keyServer?: string; anyPolicy?: boolean; org: string }) => {
      if (o.keyDir !== undefined && !c.local) throw new TpmTrustError("ERR_USAGE", "--key-dir names a folder on the service's machine: run ca init there without --server, or use --key-server");
      return c.call<{ root: CaView; issuing: CaView }>("POST", "/v1/ca/init", {
        alg: o.alg,
        organization: o.org,
        ...(o.keyDir !== undefined ? { keyDir: resolve(o.keyDir) } : {}),
        ...(o.keyServer !== undefined ? { keyServer: o.keyServer } : {}),
        ...(o.anyPolicy ? { anyPolicy: true } : {}),
      });
    },
    print: (r) => {
      for (const a of [r.root, r.issuing]) process.stdout.write(`${a.kind}\t${a.subject}\t${a.notAfter}\t${a.keyRef.split(":").slice(0, 2).join(":")}\n`);
      process.stdout.write(`issuing CA policies: ${r.issuing.policies.join(", ")}\n`);
    },
  });

  const templates = ca.command("templates").description("certificate templates");
  adminCommand(templates, "add [file]", "create or replace a template from a JSON file (- for stdin) and/or flags", {
    options: (c) =>
      c
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
        .addOption(
          new Option("--subject-from <source>", "where subject and SANs come from: the attested host's name, or the CSR (checked against the patterns and an attested host's name); default host when attestation is required").choices([
            ...SUBJECT_SOURCES,
          ]),
        )
        .option("--host-classes <list>", "requesters: attested hosts of these hardware classes (or --host-tags); default any host")
        .option("--host-tags <list>", "requesters: attested hosts carrying one of these tags")
        .option("--no-hosts", "requesters: no attested host may enroll on its own")
        .option("--enrollers <list>", "requesters: identities of enroller tokens (admin token create --role enroller --identity …)")
        .option("--no-admins", "requesters: admin tokens may not enroll")
        .option("--anonymous", "requesters: admit requests with neither a token nor valid attestation"),
    run: (c, [file], o: TemplateFlags & AdminOptions) => c.call<TemplateView>("POST", "/v1/ca/templates", templateDocument(file, o)),
    print: (t) => void process.stdout.write(templateLine(t) + "\n"),
  });
  adminCommand(templates, "list", "list templates: name, attestation mode, trust models, validity, key types", {
    run: (c) => c.list<TemplateView>("/v1/ca/templates"),
    print: (list) => list.forEach((t) => process.stdout.write(templateLine(t) + "\n")),
  });
  adminCommand(templates, "show <name>", "print a template (JSON)", { noJson: true, run: (c, [name]) => c.call<TemplateView>("GET", `/v1/ca/templates/${seg(name)}`), print: (t) => printJson(t) });
  adminCommand(templates, "remove <name>", "remove a template", { noJson: true, run: (c, [name]) => c.call<void>("DELETE", `/v1/ca/templates/${seg(name)}`), print: () => undefined });

  const certs = ca.command("certs").description("issued certificates");
  adminCommand(certs, "list", "list issued certificates, newest first", {
    options: (c) =>
      c
        .option("--template <name>", "only this template's")
        .option("--host <name>", "only this host's")
        .option("--revoked", "only revoked ones")
        .option("--all", "include AK certificates of the attestation CA"),
    run: (c, _a, o: AdminOptions & { template?: string; host?: string; revoked?: boolean; all?: boolean }) => {
      const q = new URLSearchParams({ ...(o.template ? { template: o.template } : {}), ...(o.host ? { host: o.host } : {}), ...(o.revoked ? { revoked: "true" } : {}), ...(o.all ? { all: "true" } : {}) });
      return c.list<CertView>(`/v1/ca/certs${q.size ? `?${q}` : ""}`);
    },
    print: (list) =>
      list.forEach((c) => {
        const policies = (c.attestation?.policies as string[] | undefined)?.join(",") || "-";
        process.stdout.write(`${c.serial}\t${c.subject}\t${c.template ?? "-"}\t${c.host ?? "-"}\t${c.notAfter}\t${c.revokedAt ? `revoked:${c.revocationReason}` : "valid"}\t${policies}\n`);
      }),
  });
  adminCommand(certs, "revoke <serial>", "revoke a certificate and publish a new CRL", {
    options: (c) => c.addOption(new Option("--reason <reason>", "RFC 5280 reason").choices(Object.keys(REVOCATION_REASONS)).default("unspecified")),
    run: (c, [serial], o: AdminOptions & { reason: string }) => c.call<CertView>("POST", `/v1/ca/certs/${seg(serial)}/revoke`, { reason: o.reason }),
    print: (c, o) => void process.stdout.write(`${c.serial}\trevoked\t${o.reason}\n`),
  });

  const requests = ca.command("requests").description("key attestation requests waiting for the answer to their EK challenge (POST /v1/ca/cmc)");
  const requestId = (id: string): number => {
    if (!/^[1-9][0-9]{0,9}$/.test(id)) throw new TpmTrustError("ERR_USAGE", `a request id is a positive number, not ${JSON.stringify(id)}`);
    return Number(id);
  };
  adminCommand(requests, "list", "requests waiting for their answer, newest first: id, state, template, subject, requester, EK hash, expiry", {
    options: (c) => c.option("--all", "also the answered and expired ones"),
    run: (c, _a, o: AdminOptions & { all?: boolean }) => c.list<PendingRequestView>(`/v1/ca/requests${o.all ? "?all=true" : ""}`),
    print: (list) => list.forEach((r) => process.stdout.write(`${r.requestId}\t${r.state}\t${r.template}\t${r.subject}\t${r.requester}\t${r.ekHash}\t${r.expiresAt}\n`)),
  });
  adminCommand(requests, "show <id>", "one request: who asked, template, subject, EK hash and certificates, AIK Name, when it was made and expires", {
    run: (c, [id]) => c.call<PendingRequestView>("GET", `/v1/ca/requests/${requestId(id)}`),
    print: (r) => Object.entries(r).forEach(([k, v]) => process.stdout.write(`${k}\t${v ?? "-"}\n`)),
  });
  adminCommand(requests, "deny <id>", "deny a request waiting for its answer (as certutil -deny): it is removed and its answer finds no request; audited as event 53", {
    options: (c) => c.option("--reason <text>", "why, for the audit log"),
    run: (c, [id], o: AdminOptions & { reason?: string }) => c.call<PendingRequestView>("POST", `/v1/ca/requests/${requestId(id)}/deny`, o.reason !== undefined ? { reason: o.reason } : {}),
    print: (r) => void process.stdout.write(`${r.requestId}\tdenied\n`),
  });

  adminCommand(ca, "crl", "publish a new CRL now and write it (DER)", {
    options: (c) => c.requiredOption("--out <file>", "where to write the CRL"),
    noJson: true,
    run: (c) => c.call<{ number: number; nextUpdate: number; crl: string }>("POST", "/v1/ca/crl"),
    print: (crl, o: AdminOptions & { out: string }) => {
      writeOut(o.out, Buffer.from(crl.crl, "base64"));
      process.stdout.write(`CRL ${crl.number} (next update ${new Date(crl.nextUpdate).toISOString()}) -> ${o.out}\n`);
    },
  });

  adminCommand(ca, "xchg", "the CA exchange certificate Windows clients encrypt their EK info to (issued or renewed when needed), then the CA chain (PEM)", {
    options: (c) => c.option("--out <file>", "write the PEM here instead of stdout"),
    noJson: true,
    run: (c) => c.text("/v1/ca/xchg"),
    print: (pem, o: AdminOptions & { out?: string }) => (o.out ? writeOut(o.out, pem) : void process.stdout.write(pem)),
  });

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
