/**
 * Reads EK trust material from disk: certificate files, PEM bundles and vendor folder trees (e.g.
 * the extracted Microsoft TrustedTpm.cab: `Vendor/RootCA/…`, `Vendor/IntermediateCA/…`), and AD CS
 * style EKpub allow-list directories (zero-byte files named by the EK hash). The parsing and the
 * judgement live in src/verify/ek; this module only reads files and reports what it skipped.
 */
import { readdirSync, readFileSync, statSync, type Stats } from "node:fs";
import { basename, dirname, extname, isAbsolute, join, relative } from "node:path";
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

const serviceUid = () => process.getuid?.() ?? 0;

/** ERR_UNSAFE_FILE unless `st` is owned by root or this process's user and group/others cannot write it (sticky folders excepted when `stickyOk`). */
function checkOwnerAndMode(path: string, st: Stats, what: string, stickyOk = false): void {
  if (st.uid !== 0 && st.uid !== serviceUid()) {
    throw new TpmTrustError("ERR_UNSAFE_FILE", `${what} ${path} is owned by uid ${st.uid}, neither root nor the service's user (uid ${serviceUid()})`, { path, uid: st.uid });
  }
  if (st.mode & 0o022 && !(stickyOk && st.mode & 0o1000)) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
    throw new TpmTrustError("ERR_UNSAFE_FILE", `${what} ${path} has mode ${mode}: group or others can write it (chmod go-w)`, { path, mode });
  }
}

/**
 * The checks sshd makes of authorized_keys, for a folder whose files the service trusts: an
 * absolute path; the folder and every folder above it owned by root or the service's user and
 * not writable by group or others (a sticky folder such as /tmp above it excepted, since no one
 * else can rename entries there). ERR_VALIDATION for a relative path, ERR_UNSAFE_FILE otherwise.
 */
function checkTrustedFolder(dir: string): void {
  if (!isAbsolute(dir)) throw new TpmTrustError("ERR_VALIDATION", `${dir} is not an absolute path`, { path: dir });
  for (let p = dir, first = true; ; first = false) {
    let st: Stats;
    try {
      st = statSync(p);
    } catch (e) {
      throw ioError(p, e);
    }
    checkOwnerAndMode(p, st, first ? "the folder" : "the folder above it,", !first);
    const up = dirname(p);
    if (up === p) return;
    p = up;
  }
}

/**
 * Reads an AD CS EKpub allow-list directory: each zero-byte file named by a 64-hex-digit EK hash
 * (no extension; any case, matched case-insensitively) allow-lists that EK. Other entries are
 * ignored and reported. The folder must pass `checkTrustedFolder`, and an allow-list file that
 * group/others can write or that another user owns is refused (ERR_UNSAFE_FILE), not skipped.
 */
export function loadAllowlistDir(dir: string): AllowlistDir {
  checkTrustedFolder(dir);
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
    else {
      checkOwnerAndMode(path, st, "the allow-list file");
      hashes.add(name.toLowerCase());
    }
  }
  return { hashes, ignored };
}
