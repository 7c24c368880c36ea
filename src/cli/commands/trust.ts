import { statSync } from "node:fs";
import { basename, resolve } from "node:path";
import type { Command } from "commander";
import {
  addAllowlist,
  addAllowlistDir,
  importCaFiles,
  listAllowlist,
  listAllowlistDirs,
  listCas,
  removeAllowlist,
  removeAllowlistDir,
  removeCa,
  listRevokedEks,
  revokeEk,
  unrevokeEk,
  type Caller,
} from "../../trust/trust.js";
import type { Store } from "../../store/index.js";
import { action, printJson, usage } from "../run.js";
import { DB_OPTION_HELP, withStore } from "../store.js";
import { progress, withProgress, type Progress } from "../progress.js";
import { decodeHostIdentity } from "../../attest/identity.js";
import { loadAllowlistDir } from "../../trust/trust-files.js";
import { TpmTrustError } from "../../errors.js";
import { ekHash, ekHashFromCertificate, isEkHash, loadCertificates } from "../../verify/ek/index.js";
import { readInput } from "../files.js";

const cli = (): Caller => ({ actor: "cli", now: Date.now() });

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

/** `<parent> list [--db] [--json]`: reads with `fetch`, prints JSON or `text`; the database must exist. */
function listCommand<T>(parent: Command, description: string, fetch: (store: Store) => Promise<T>, text: (r: T) => void): void {
  parent
    .command("list")
    .description(description)
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((o: { db?: string; json?: boolean }) =>
        withStore(
          o.db,
          async (store) => {
            const r = await fetch(store);
            if (o.json) printJson(r);
            else text(r);
          },
          { mustExist: true },
        ),
      ),
    );
}

/** `tpmtrust trust …`: the EK allow-list, allow-list folders, and EK roots/intermediates. */
export function register(program: Command): void {
  const trust = program.command("trust").description("EK trust: the EKpub allow-list, AD CS-style allow-list folders, manufacturer roots (EKROOT) and intermediates (EKCA)");

  const allow = trust.command("allowlist").description("EK hashes (hex SHA-256 of the EK public key, case-insensitive) trusted by the ek-key method");
  allow
    .command("add <ekHash>")
    .description("allow-list an EK hash")
    .option("--label <text>", "what this TPM is")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((ekHash: string, o: { label?: string; db?: string }) =>
        withStore(o.db, async (store) => {
          const r = await addAllowlist(store, { ekHash, label: o.label ?? null, via: "cli" }, cli());
          process.stdout.write(`${r.entry.ekHash}\t${r.added ? "added" : "already allow-listed"}\n`);
        }),
      ),
    );
  allow
    .command("import <paths...>")
    .description("allow-list many EKs at once: text files of EK hashes (one per line, # comments), AD CS-style folders, EK certificates (DER/PEM bundles), or `tpmtrust agent identify` JSON files")
    .option("--label <text>", "label for every entry (default: the file it came from)")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((paths: string[], o: { label?: string; db?: string; json?: boolean }) => {
        const found = paths.flatMap((p) => ekHashesIn(p).map((ekHash) => ({ ekHash, label: o.label ?? basename(p) })));
        if (found.length === 0) throw usage(`no EK hash found in ${paths.join(", ")}`);
        return withStore(o.db, async (store) => {
          const results = await withProgress("allow-listing EKs", found, (e) => e.ekHash.slice(0, 16), (e) => addAllowlist(store, { ekHash: e.ekHash, label: e.label, via: "cli" }, cli()));
          const added = results.filter((r) => r.added).map((r) => r.entry.ekHash);
          const present = results.filter((r) => !r.added).map((r) => r.entry.ekHash);
          if (o.json) return printJson({ added, present });
          process.stdout.write(`${added.length} added, ${present.length} already allow-listed\n`);
        });
      }),
    );
  allow
    .command("remove <ekHash>")
    .description("remove a database entry (folder entries: delete the file)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(action((ekHash: string, o: { db?: string }) => withStore(o.db, (store) => removeAllowlist(store, ekHash, cli()))));
  listCommand(allow, "database entries and the entries of every allow-list folder", listAllowlist, (r) => {
    tsv(r.entries.map((e) => [e.ekHash, e.source, e.label]));
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  });

  const ek = trust.command("ek").description("revoked EKs: trusted by no method, whatever allow-list entry, folder or certificate vouches for them");
  /** An EK hash, or the EK hashes a file holds (EK certificates, an agent identify file, a list of hashes). */
  const hashesOf = (arg: string) => (isEkHash(arg) ? [arg.toLowerCase()] : ekHashesIn(arg));
  ek.command("revoke <ekHashOrFile>")
    .description("revoke an EK (its hash, or every EK of an EK certificate or identify file): refused from the next decision on, in every instance (attestation, token, AK activation, enrollment, key release, DPS registration); its hosts turn unhealthy (ERR_EK_NOT_TRUSTED) without waiting for their next attestation")
    .option("--reason <text>", "why (kept and audited)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((arg: string, o: { reason?: string; db?: string }) =>
        withStore(o.db, async (store) => {
          for (const h of hashesOf(arg)) {
            const r = await revokeEk(store, { ekHash: h, reason: o.reason ?? null }, cli());
            process.stdout.write(`${r.entry.ekHash}\t${r.added ? "revoked" : "already revoked"}\n`);
          }
        }),
      ),
    );
  ek.command("unrevoke <ekHashOrFile>")
    .description("lift an EK's revocation (its trust is then judged as before)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(action((arg: string, o: { db?: string }) => withStore(o.db, async (store) => {
      for (const h of hashesOf(arg)) await unrevokeEk(store, h, cli());
    })));
  listCommand(ek, "revoked EKs", listRevokedEks, (r) => tsv(r.map((e) => [e.ekHash, new Date(e.revokedAt).toISOString(), e.reason])));

  const dirs = trust.command("allowlist-dir").description("AD CS-style folders of zero-byte files named by EK hash, re-read on every decision");
  dirs
    .command("add <dir>")
    .description("register a folder")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((dir: string, o: { db?: string }) =>
        withStore(o.db, async (store) => {
          // a relative folder is the operator's, relative to where the command runs
          const r = await addAllowlistDir(store, resolve(dir), cli());
          process.stdout.write(`${r.dir.path}\t${r.added ? "added" : "already registered"}\t${r.dir.entries} EK hashes\n`);
          for (const i of r.dir.ignored) process.stderr.write(`ignored ${i.path}: ${i.reason}\n`);
        }),
      ),
    );
  dirs
    .command("remove <dir>")
    .description("unregister a folder (its files stay)")
    .option("--db <url>", DB_OPTION_HELP)
    .action(action((dir: string, o: { db?: string }) => withStore(o.db, (store) => removeAllowlistDir(store, dir, cli()))));
  listCommand(dirs, "registered folders and what each holds now", listAllowlistDirs, (r) =>
    tsv(r.map((d) => [d.path, d.entries === null ? `unreadable: ${d.error}` : `${d.entries} EK hashes`, d.ignored.length ? `${d.ignored.length} ignored` : ""])),
  );

  trust
    .command("import <paths...>")
    .description("import EK roots/intermediates from certificate files (DER/PEM), PEM bundles and vendor folder trees (TrustedTpm.cab layout: Vendor/RootCA, Vendor/IntermediateCA)")
    .option("--root", "import everything as roots (EKROOT)")
    .option("--intermediate", "import everything as intermediates (EKCA)")
    .option("--db <url>", DB_OPTION_HELP)
    .option("--json", "print JSON")
    .action(
      action((paths: string[], o: { root?: boolean; intermediate?: boolean; db?: string; json?: boolean }) => {
        if (o.root && o.intermediate) throw usage("--root and --intermediate exclude each other");
        const kind = o.root ? "root" : o.intermediate ? "intermediate" : undefined;
        return withStore(o.db, async (store) => {
          let bar: Progress | undefined;
          const onProgress = (done: number, total: number, subject: string) => {
            bar ??= progress("storing certificates", total);
            bar.tick(subject);
          };
          const r = await importCaFiles(store, paths, { ...(kind ? { kind } : {}), onProgress }, cli()).finally(() => bar?.stop());
          if (o.json) return printJson(r);
          for (const a of r.added) process.stdout.write(`added\t${a.kind}\t${a.id}\t${a.subject}\n`);
          for (const a of r.present) process.stdout.write(`present\t${a.kind}\t${a.id}\t${a.subject}\n`);
          for (const s of r.skipped) process.stderr.write(`skipped ${s.path}: ${s.reason}\n`);
          process.stdout.write(`${r.added.length} added, ${r.present.length} already present, ${r.skipped.length} skipped\n`);
        });
      }),
    );

  const cas = trust.command("cas").description("the stored EK roots and intermediates");
  listCommand(cas, "list them (id = SHA-256 of the DER)", listCas, (r) => tsv(r.map((c) => [c.id, c.kind, c.notAfter, c.subject])));
  cas
    .command("remove <id>")
    .description("remove a root or intermediate by id")
    .option("--db <url>", DB_OPTION_HELP)
    .action(
      action((id: string, o: { db?: string }) =>
        withStore(o.db, async (store) => {
          process.stdout.write(`removed ${await removeCa(store, id, cli())} ${id.toLowerCase()}\n`);
        }),
      ),
    );
}
