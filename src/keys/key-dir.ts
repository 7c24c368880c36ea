/**
 * The key directory: the one folder where files that hold or unlock key material live (local master
 * key files, PKCS#11 PIN files, KMIP client certificates and keys). It is $TPMTRUST_KEY_DIR, else the
 * folder of the SQLite database, so the service and the CLI working on one database agree on it. A
 * setting that names a path outside it (or a link leading out of it) is refused before anything
 * touches the disk, with an error that names only the key directory: an admin's setting, sent over
 * the API, can neither probe, read nor create files elsewhere.
 *
 * PKCS#11 modules (shared libraries the service loads) may also be in the module folders: where
 * distributions install them ($TPMTRUST_PKCS11_MODULE_DIRS replaces the default list).
 */
import { openSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { TpmTrustError } from "../errors.js";
import { isPostgresUrl } from "../store/index.js";

export const KEY_DIR_ENV = "TPMTRUST_KEY_DIR";
const MODULE_DIRS_ENV = "TPMTRUST_PKCS11_MODULE_DIRS";

/** Where Debian/Ubuntu (multiarch, SoftHSM2's own folder) and Fedora/RHEL install PKCS#11 modules. */
const DEFAULT_MODULE_DIRS: readonly string[] = [
  "/usr/lib/softhsm",
  "/usr/lib/pkcs11",
  "/usr/lib/x86_64-linux-gnu/softhsm",
  "/usr/lib/x86_64-linux-gnu/pkcs11",
  "/usr/lib/aarch64-linux-gnu/softhsm",
  "/usr/lib/aarch64-linux-gnu/pkcs11",
  "/usr/lib64/softhsm",
  "/usr/lib64/pkcs11",
];

/** Where a key server's files may be: given to KeyServerKind.configure and open. */
export interface KeyDirContext {
  keyDir(): string;
}

/**
 * $TPMTRUST_KEY_DIR, else the folder of the SQLite database at `location`. ERR_USAGE when neither
 * names a folder (PostgreSQL, an in-memory database, or no database): the operator must set it.
 */
export function keyDirOf(location?: string): string {
  const env = process.env[KEY_DIR_ENV];
  if (env) return resolve(env);
  if (location !== undefined && location !== ":memory:" && !isPostgresUrl(location)) return dirname(resolve(location));
  throw new TpmTrustError(
    "ERR_USAGE",
    `set ${KEY_DIR_ENV} to the folder for key files (master key files, PIN files), the same for the service and the CLI: ${location === undefined ? "no database is known here" : "a PostgreSQL or in-memory database has no folder of its own"}`,
  );
}

/** The key directory of a store's database. */
export const storeKeyDir = (store: { location: string }): KeyDirContext => ({ keyDir: () => keyDirOf(store.location) });

/** $TPMTRUST_KEY_DIR only (no database known). */
export const ENV_KEY_DIR: KeyDirContext = { keyDir: () => keyDirOf() };

const inside = (dir: string, p: string) => {
  const rel = relative(dir, p);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
};

const confinedError = (setting: string, dir: string) => new TpmTrustError("ERR_VALIDATION", `${setting} must name a file inside the key directory ${dir} ($${KEY_DIR_ENV})`);

/** `file` (relative: to the key directory) as an absolute path inside the key directory; ERR_VALIDATION, naming only the key directory, otherwise. */
export function confinedPath(ctx: KeyDirContext, file: string, setting: string): string {
  const dir = ctx.keyDir();
  const abs = resolve(dir, file);
  if (!inside(dir, abs)) throw confinedError(setting, dir);
  return abs;
}

/**
 * Opens `path` (from confinedPath) for reading once its real path is still inside the key
 * directory (a link inside it must not lead out); a file that cannot be opened is ERR_IO naming it.
 */
export function openConfined(ctx: KeyDirContext, path: string, setting: string, what: string): number {
  const dir = ctx.keyDir();
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
  let realDir: string;
  try {
    realDir = realpathSync(dir);
  } catch {
    throw confinedError(setting, dir);
  }
  if (!inside(realDir, real)) throw confinedError(setting, dir);
  try {
    return openSync(real, "r");
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  }
}

/** $TPMTRUST_PKCS11_MODULE_DIRS (absolute folders separated by ":"), else DEFAULT_MODULE_DIRS. */
function moduleDirs(): string[] {
  const env = process.env[MODULE_DIRS_ENV];
  if (env === undefined || env === "") return [...DEFAULT_MODULE_DIRS];
  const dirs = env.split(":").filter((d) => d !== "");
  if (dirs.some((d) => !isAbsolute(d))) throw new TpmTrustError("ERR_USAGE", `${MODULE_DIRS_ENV} must list absolute folders separated by ":"`);
  return dirs.map((d) => resolve(d));
}

/** The folders a PKCS#11 module may be in: the module folders, and the key directory when there is one. */
function moduleFolders(ctx: KeyDirContext): string[] {
  const dirs = moduleDirs();
  try {
    return [...dirs, ctx.keyDir()];
  } catch {
    return dirs; // no key directory (PostgreSQL without $TPMTRUST_KEY_DIR): the module folders only
  }
}

const moduleError = (dirs: string[]) =>
  new TpmTrustError("ERR_VALIDATION", `module must be the absolute path of a PKCS#11 module in one of ${dirs.join(", ")} (the module folders, $${MODULE_DIRS_ENV}, or the key directory, $${KEY_DIR_ENV})`);

/** `module` as a normalised absolute path inside a module folder or the key directory; ERR_VALIDATION, naming only the folders, otherwise. */
export function confinedModule(ctx: KeyDirContext, module: string): string {
  const dirs = moduleFolders(ctx);
  const abs = resolve(module);
  if (!isAbsolute(module) || !dirs.some((d) => inside(d, abs))) throw moduleError(dirs);
  return abs;
}

/**
 * The real path of `module` (from confinedModule) to load, once it is still inside the real path of
 * a module folder or the key directory (a link must not lead out); ERR_IO naming it when it is missing.
 */
export function realModule(ctx: KeyDirContext, module: string): string {
  const dirs = moduleFolders(ctx);
  let real: string;
  try {
    real = realpathSync(module);
  } catch (e) {
    throw new TpmTrustError("ERR_IO", `cannot load the PKCS#11 module ${module}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { module });
  }
  const realDirs = dirs.flatMap((d) => {
    try {
      return [realpathSync(d)];
    } catch {
      return [];
    }
  });
  if (!realDirs.some((d) => inside(d, real))) throw moduleError(dirs);
  return real;
}
