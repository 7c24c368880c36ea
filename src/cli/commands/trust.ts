import { statSync } from "node:fs";
import { basename, resolve } from "node:path";
import type { Command } from "commander";
import type { AllowlistDirView, AllowlistView, CaView, ImportResult, RevokedEkView } from "../../trust/trust.js";
import { usage } from "../run.js";
import { progress, withProgress } from "../progress.js";
import { decodeHostIdentity } from "../../attest/identity.js";
import { loadAllowlistDir, loadTrustAnchors } from "../../trust/trust-files.js";
import { TpmTrustError } from "../../errors.js";
import { ekHash, ekHashFromCertificate, isEkHash, loadCertificates } from "../../verify/ek/index.js";
import { readInput } from "../files.js";
import { adminCommand, seg, type AdminClient, type AdminOptions } from "../admin-client.js";

type Opts = AdminOptions & { json?: boolean };
/** Certificates per POST /v1/trust/cas of an import (well inside its 1 MiB body). */
const IMPORT_BATCH = 200;

/** The EK hashes a path holds: an AD CS folder, a list of hashes, EK certificates, or an identity JSON. */
function ekHashesIn(path: string): string[] {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return [...loadAllowlistDir(path).hashes];
  const bytes = readInput(path, "allow-list import");
  const text = bytes.toString("utf8");
  if (/^\s*\{/.test(text)) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new TpmTrustError("ERR_PARSE_FORMAT", `${path}: looks like JSON (an agent identify file) but does not parse`);
    }
    return decodeHostIdentity(json).eks.map((e) => ekHash(e.public));
  }
  const lines = text.split(/\r?\n/).map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
  if (lines.length > 0 && lines.every(isEkHash)) return lines.map((l) => l.toLowerCase());
  try {
    return loadCertificates(bytes).map(ekHashFromCertificate);
  } catch (e) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `${path}: neither EK hashes (64 hex digits per line), EK certificates nor an agent identify file`, { cause: (e as Error).message });
  }
}
const tsv = (rows: (string | number | null)[][]) => process.stdout.write(rows.map((r) => r.map((c) => c ?? "").join("\t") + "\n").join(""));

/** The allow-list with the warnings of folders that cannot be read now, as the service sees them. */
async function allowlist(c: AdminClient): Promise<{ entries: AllowlistView[]; warnings: string[] }> {
  const [entries, dirs] = await Promise.all([c.list<AllowlistView>("/v1/trust/allowlist"), c.list<AllowlistDirView>("/v1/trust/allowlist-dirs")]);
  return { entries, warnings: dirs.filter((d) => d.entries === null).map((d) => `allow-list folder ${d.path} could not be read: ${d.error}`) };
}

/** A folder on this machine for the local database; with --server, a path on the service's machine as given (it must be absolute). */
const folder = (c: AdminClient, dir: string) => (c.local ? resolve(dir) : dir);

/** `tpmtrust trust …`: the EK allow-list, allow-list folders, revoked EKs and EK roots/intermediates, through /v1/trust (--server, else the local database). */
export function register(program: Command): void {
  const trust = program.command("trust").description("EK trust: the EKpub allow-list, AD CS-style allow-list folders, manufacturer roots (EKROOT) and intermediates (EKCA); on the running service with --server, else on the local database");

  const allow = trust.command("allowlist").description("EK hashes (hex SHA-256 of the EK public key, case-insensitive) trusted by the ek-key method");
  adminCommand(allow, "add <ekHash>", "allow-list an EK hash", {
    options: (c) => c.option("--label <text>", "what this TPM is"),
    noJson: true,
    run: (c, [h], o: Opts & { label?: string }) => c.exchange<AllowlistView>("POST", "/v1/trust/allowlist", { ekHash: h, ...(o.label !== undefined ? { label: o.label } : {}) }),
    print: (r) => void process.stdout.write(`${r.body.ekHash}\t${r.status === 201 ? "added" : "already allow-listed"}\n`),
  });
  adminCommand(
    allow,
    "import <paths...>",
    "allow-list many EKs at once: text files of EK hashes (one per line, # comments), AD CS-style folders, EK certificates (DER/PEM bundles), or `tpmtrust agent identify` JSON files",
    {
      options: (c) => c.option("--label <text>", "label for every entry (default: the file it came from)"),
      run: async (c, a, o: Opts & { label?: string }) => {
        const paths = a[0] as unknown as string[];
        const found = paths.flatMap((p) => ekHashesIn(p).map((h) => ({ ekHash: h, label: o.label ?? basename(p) })));
        if (found.length === 0) throw usage(`no EK hash found in ${paths.join(", ")}`);
        const results = await withProgress("allow-listing EKs", found, (e) => e.ekHash.slice(0, 16), (e) => c.exchange<AllowlistView>("POST", "/v1/trust/allowlist", e));
        return { added: results.filter((r) => r.status === 201).map((r) => r.body.ekHash), present: results.filter((r) => r.status !== 201).map((r) => r.body.ekHash) };
      },
      print: (r) => void process.stdout.write(`${r.added.length} added, ${r.present.length} already allow-listed\n`),
    },
  );
  adminCommand(allow, "remove <ekHash>", "remove a database entry (folder entries: delete the file)", {
    noJson: true,
    run: (c, [h]) => c.call<void>("DELETE", `/v1/trust/allowlist/${seg(h)}`),
    print: () => undefined,
  });
  adminCommand(allow, "list", "database entries and the entries of every allow-list folder", {
    mustExist: true,
    run: allowlist,
    print: (r) => {
      tsv(r.entries.map((e) => [e.ekHash, e.source, e.label]));
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    },
  });

  const ek = trust.command("ek").description("revoked EKs: trusted by no method, whatever allow-list entry, folder or certificate vouches for them");
  /** An EK hash, or the EK hashes a file holds (EK certificates, an agent identify file, a list of hashes). */
  const hashesOf = (arg: string) => (isEkHash(arg) ? [arg.toLowerCase()] : ekHashesIn(arg));
  adminCommand(
    ek,
    "revoke <ekHashOrFile>",
    "revoke an EK (its hash, or every EK of an EK certificate or identify file): refused from the next decision on, in every instance (attestation, token, AK activation, enrollment, key release, DPS registration); its hosts turn unhealthy (ERR_EK_NOT_TRUSTED) without waiting for their next attestation",
    {
      options: (c) => c.option("--reason <text>", "why (kept and audited)"),
      noJson: true,
      run: async (c, [arg], o: Opts & { reason?: string }) => {
        const out = [];
        for (const h of hashesOf(arg)) out.push(await c.exchange<RevokedEkView>("POST", "/v1/trust/revoked-eks", { ekHash: h, ...(o.reason !== undefined ? { reason: o.reason } : {}) }));
        return out;
      },
      print: (rs) => rs.forEach((r) => process.stdout.write(`${r.body.ekHash}\t${r.status === 201 ? "revoked" : "already revoked"}\n`)),
    },
  );
  adminCommand(ek, "unrevoke <ekHashOrFile>", "lift an EK's revocation (its trust is then judged as before)", {
    noJson: true,
    run: async (c, [arg]) => {
      for (const h of hashesOf(arg)) await c.call("DELETE", `/v1/trust/revoked-eks/${seg(h)}`);
    },
    print: () => undefined,
  });
  adminCommand(ek, "list", "revoked EKs", {
    mustExist: true,
    run: (c) => c.list<RevokedEkView>("/v1/trust/revoked-eks"),
    print: (r) => tsv(r.map((e) => [e.ekHash, new Date(e.revokedAt).toISOString(), e.reason])),
  });

  const dirs = trust.command("allowlist-dir").description("AD CS-style folders of zero-byte files named by EK hash, re-read on every decision (with --server: a folder on the service's machine, by absolute path)");
  adminCommand(dirs, "add <dir>", "register a folder", {
    noJson: true,
    run: (c, [dir]) => c.exchange<AllowlistDirView>("POST", "/v1/trust/allowlist-dirs", { path: folder(c, dir) }),
    print: ({ status, body: d }) => {
      process.stdout.write(`${d.path}\t${status === 201 ? "added" : "already registered"}\t${d.entries} EK hashes\n`);
      for (const i of d.ignored) process.stderr.write(`ignored ${i.path}: ${i.reason}\n`);
    },
  });
  adminCommand(dirs, "remove <dir>", "unregister a folder (its files stay)", {
    noJson: true,
    run: (c, [dir]) => c.call<void>("DELETE", "/v1/trust/allowlist-dirs", { path: folder(c, dir) }),
    print: () => undefined,
  });
  adminCommand(dirs, "list", "registered folders and what each holds now", {
    mustExist: true,
    run: (c) => c.list<AllowlistDirView>("/v1/trust/allowlist-dirs"),
    print: (r) => tsv(r.map((d) => [d.path, d.entries === null ? `unreadable: ${d.error}` : `${d.entries} EK hashes`, d.ignored.length ? `${d.ignored.length} ignored` : ""])),
  });

  adminCommand(
    trust,
    "import <paths...>",
    "import EK roots/intermediates from certificate files (DER/PEM), PEM bundles and vendor folder trees (TrustedTpm.cab layout: Vendor/RootCA, Vendor/IntermediateCA), read on this machine",
    {
      options: (c) => c.option("--root", "import everything as roots (EKROOT)").option("--intermediate", "import everything as intermediates (EKCA)"),
      prepare: (_a, o: Opts & { root?: boolean; intermediate?: boolean }) => {
        if (o.root && o.intermediate) throw usage("--root and --intermediate exclude each other");
      },
      run: async (c, a, o) => {
        const paths = a[0] as unknown as string[];
        // roles from the folder layout (or --root/--intermediate) are decided here, where the files are
        const loaded = loadTrustAnchors(paths, o.root ? { role: "root" } : o.intermediate ? { role: "intermediate" } : {});
        const der = (x: { der: Uint8Array }) => Buffer.from(x.der).toString("base64");
        const certificates = [...loaded.roots.map((x) => ({ certificate: der(x), kind: "root" })), ...loaded.intermediates.map((x) => ({ certificate: der(x), kind: "intermediate" }))];
        const r: ImportResult = { added: [], present: [], skipped: [...loaded.skipped] };
        // in batches the request body limit holds, each stored (and audited) in one transaction
        const bar = progress("storing certificates", certificates.length);
        try {
          for (let i = 0; i < certificates.length; i += IMPORT_BATCH) {
            const batch = certificates.slice(i, i + IMPORT_BATCH);
            const b = await c.call<ImportResult>("POST", "/v1/trust/cas", { certificates: batch });
            r.added.push(...b.added);
            r.present.push(...b.present);
            r.skipped.push(...b.skipped);
            for (const x of [...b.added, ...b.present]) bar.tick(x.subject);
          }
        } finally {
          bar.stop();
        }
        return r;
      },
      print: (r) => {
        for (const a of r.added) process.stdout.write(`added\t${a.kind}\t${a.id}\t${a.subject}\n`);
        for (const a of r.present) process.stdout.write(`present\t${a.kind}\t${a.id}\t${a.subject}\n`);
        for (const s of r.skipped) process.stderr.write(`skipped ${s.path}: ${s.reason}\n`);
        process.stdout.write(`${r.added.length} added, ${r.present.length} already present, ${r.skipped.length} skipped\n`);
      },
    },
  );

  const cas = trust.command("cas").description("the stored EK roots and intermediates");
  adminCommand(cas, "list", "list them (id = SHA-256 of the DER)", { mustExist: true, run: (c) => c.list<CaView>("/v1/trust/cas"), print: (r) => tsv(r.map((x) => [x.id, x.kind, x.notAfter, x.subject])) });
  adminCommand(cas, "remove <id>", "remove a root or intermediate by id", {
    noJson: true,
    run: async (c, [id]) => {
      const kind = (await c.list<CaView>("/v1/trust/cas")).find((x) => x.id === id.toLowerCase())?.kind;
      await c.call("DELETE", `/v1/trust/cas/${seg(id)}`);
      return { kind, id: id.toLowerCase() };
    },
    print: (r) => void process.stdout.write(`removed ${r.kind} ${r.id}\n`),
  });
}
