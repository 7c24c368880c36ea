/**
 * Reads EK trust material from disk: certificate files, PEM bundles and vendor folder trees (e.g.
 * the extracted Microsoft TrustedTpm.cab: `Vendor/RootCA/…`, `Vendor/IntermediateCA/…`), and AD CS
 * style EKpub allow-list directories (zero-byte files named by the EK hash). The parsing and the
 * judgement live in src/verify/ek; this module only reads files and reports what it skipped.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, extname, join, relative } from "node:path";
import { isTpmTrustError, TpmTrustError } from "../errors.js";
import { classifyCertificates, isEkHash, loadCertificates, roleFromPath, type AnchorRole, type ParsedCertificate, type TrustAnchors } from "../verify/ek/index.js";

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface LoadedTrustAnchors extends TrustAnchors {
  /** every certificate loaded, with the file it came from and the role it got */
  files: { path: string; role: AnchorRole; certificate: string }[];
  /** files found in folders but not loaded (wrong extension, unparseable), with the reason */
  skipped: SkippedFile[];
}

const CERT_EXTENSIONS = new Set([".cer", ".crt", ".pem", ".der"]);
const MAX_DEPTH = 16;

function ioError(path: string, e: unknown): TpmTrustError {
  return new TpmTrustError("ERR_IO", `${path}: ${(e as Error).message}`, { path });
}

function read(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw ioError(path, e);
  }
}

/** Files below `dir` (sorted, symlinks followed, at most MAX_DEPTH levels); unreadable entries go to `skipped`. */
function walk(dir: string, skipped: SkippedFile[], depth = 0): string[] {
  if (depth > MAX_DEPTH) throw new TpmTrustError("ERR_IO", `${dir}: folders nested deeper than ${MAX_DEPTH} levels`, { path: dir });
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw ioError(dir, e);
  }
  return names.flatMap((n) => {
    const p = join(dir, n);
    try {
      return statSync(p).isDirectory() ? walk(p, skipped, depth + 1) : [p];
    } catch (e) {
      if (isTpmTrustError(e)) throw e;
      skipped.push({ path: p, reason: (e as Error).message });
      return [];
    }
  });
}

/**
 * Loads trust anchors from files and folders. A file given by name is loaded whatever its extension
 * and must parse (ERR_PARSE_CERT otherwise); in a folder, .cer/.crt/.pem/.der files are loaded and
 * anything else or anything unparseable is skipped and reported. Roles: `opts.role` if given, else
 * a folder name saying RootCA/IntermediateCA, else self-signed = root and others intermediates.
 */
export function loadTrustAnchors(paths: string | readonly string[], opts: { role?: AnchorRole } = {}): LoadedTrustAnchors {
  const entries: { cert: ParsedCertificate; role?: AnchorRole; path: string }[] = [];
  const skipped: SkippedFile[] = [];
  for (const path of typeof paths === "string" ? [paths] : paths) {
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (e) {
      throw ioError(path, e);
    }
    if (!isDir) {
      for (const cert of loadCertificates(read(path))) entries.push({ cert, path, ...(opts.role ? { role: opts.role } : {}) });
      continue;
    }
    for (const file of walk(path, skipped)) {
      if (!CERT_EXTENSIONS.has(extname(file).toLowerCase())) {
        skipped.push({ path: file, reason: "not a certificate file (.cer, .crt, .pem, .der)" });
        continue;
      }
      let certs: ParsedCertificate[];
      try {
        certs = loadCertificates(read(file));
      } catch (e) {
        if (!isTpmTrustError(e) || e.code === "ERR_IO") throw e;
        skipped.push({ path: file, reason: `${e.code}: ${e.message}` });
        continue;
      }
      const role = opts.role ?? roleFromPath(relative(path, file));
      for (const cert of certs) entries.push({ cert, path: file, ...(role ? { role } : {}) });
    }
  }
  const anchors = classifyCertificates(entries);
  const roleOf = (c: ParsedCertificate): AnchorRole => (anchors.roots.includes(c) ? "root" : "intermediate");
  const kept = entries.filter((e) => anchors.roots.includes(e.cert) || anchors.intermediates.includes(e.cert));
  return { ...anchors, files: kept.map((e) => ({ path: e.path, role: roleOf(e.cert), certificate: e.cert.label })), skipped };
}

export interface AllowlistDir {
  /** EK hashes, lowercase */
  hashes: Set<string>;
  /** entries that are not allow-list files, with the reason */
  ignored: SkippedFile[];
}

/**
 * Reads an AD CS EKpub allow-list directory: each zero-byte file named by a 64-hex-digit EK hash
 * (no extension; any case, matched case-insensitively) allow-lists that EK. Other entries are
 * ignored and reported.
 */
export function loadAllowlistDir(dir: string): AllowlistDir {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw ioError(dir, e);
  }
  const hashes = new Set<string>();
  const ignored: SkippedFile[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      ignored.push({ path, reason: (e as Error).message });
      continue;
    }
    if (!st.isFile()) ignored.push({ path, reason: "not a regular file" });
    else if (!isEkHash(basename(name))) ignored.push({ path, reason: "name is not a 64-hex-digit EK hash" });
    else if (st.size !== 0) ignored.push({ path, reason: `not empty (${st.size} bytes); allow-list files are zero-byte` });
    else hashes.add(name.toLowerCase());
  }
  return { hashes, ignored };
}
