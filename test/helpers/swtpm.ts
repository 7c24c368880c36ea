/**
 * Starts throwaway software TPMs (swtpm) on 127.0.0.1 for tests.
 *
 * - `startSwtpm()` (cheap, ~50 ms): fresh state, banks sha1/sha256/sha384/sha512, no EK certificates.
 * - `startSwtpm({ ekCerts: true })` (~0.7 s; +0.5 s for the first call in a process, which creates
 *   the CA): swtpm_setup writes an RSA-2048 (or 3072) EK (0x81010001, cert NV 0x01c00002), a P-384 EK
 *   (0x81010016, cert 0x01c00016) and a platform certificate (0x01c08000), issued by a private
 *   swtpm_localca CA in a temp dir (nothing goes to /var/lib). The CA is shared by all swtpms of
 *   one test process; each swtpm has its own seeds and keys.
 *
 * A missing swtpm always throws (CI or not) with an install hint: tests never skip silently.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePorts } from "./ports.js";

export const TPM_PACKAGES = "swtpm swtpm-tools tpm2-tools tpm2-openssl libtss2-tcti-swtpm0 gnutls-bin";

/** Throws unless `tool` is on PATH; the message says how to install it. */
export function requireTool(tool: string): void {
  const found = (process.env.PATH ?? "").split(delimiter).some((d) => d && existsSync(join(d, tool)));
  if (found) return;
  const why = process.env.CI === "true" ? "CI=true requires the real TPM stack" : "tests need the real TPM stack and never skip";
  throw new Error(`${tool} not found on PATH (${why}). Install as root: scripts/setup.sh, or apt-get install -y ${TPM_PACKAGES}`);
}

export interface SwtpmOptions {
  /** Run swtpm_setup with a private EK CA: EKs, EK certificates and a platform certificate in NV. */
  ekCerts?: boolean;
  /** RSA EK size for ekCerts: 2048 (EK 0x81010001, cert 0x01c00002, default) or 3072 (0x8101001c, cert 0x01c0001c). */
  rsaKeySize?: 2048 | 3072;
  /** PCR banks to activate, e.g. ["sha1", "sha256"] (runs swtpm_setup). Default: all four. */
  pcrBanks?: string[];
  /** Start with `--flags startup-clear` (default true). false: the TPM is off until CMD_INIT and TPM2_Startup. */
  startupClear?: boolean;
}

export interface EkCa {
  dir: string;
  /** CN=swtpm-localca-rootca, self-signed */
  rootPem: string;
  /** CN=swtpm-localca, issuer of the EK and platform certificates */
  intermediatePem: string;
}

export interface Swtpm {
  host: "127.0.0.1";
  port: number;
  ctrlPort: number;
  /** TCTI string for tpm2-tools and tpmtrust's --tpm option */
  tcti: string;
  pid: number;
  stateDir: string;
  /** with ekCerts: the private CA's directory and PEMs */
  caDir?: string;
  ca?: EkCa;
  stop(): Promise<void>;
}

const live = new Map<number, { child: ChildProcess; dir: string }>();
let processDir: string | undefined;
// swtpm_localca keeps its CA state in one directory: run setups one at a time.
let setupQueue: Promise<unknown> = Promise.resolve();

process.on("exit", () => {
  for (const [pid, { dir }] of live) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
  if (processDir) rmSync(processDir, { recursive: true, force: true });
});

function sharedDir(): string {
  processDir ??= mkdtempSync(join(tmpdir(), "tpmtrust-ekca-"));
  return processDir;
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} failed: ${err.message}\n${stdout}${stderr}`)) : resolve(),
    );
  });
}

async function runSetup(work: string, stateDir: string, opts: SwtpmOptions): Promise<EkCa | undefined> {
  const args = ["--tpm2", "--tpm-state", stateDir, "--logfile", join(work, "swtpm_setup.log")];
  if (opts.pcrBanks) args.push("--pcr-banks", opts.pcrBanks.join(","));
  const conf = join(work, "swtpm_setup.conf");
  let ca: EkCa | undefined;
  if (opts.ekCerts) {
    requireTool("swtpm_localca");
    requireTool("certtool");
    const dir = join(sharedDir(), "localca");
    mkdirSync(dir, { recursive: true });
    const lcaConf = join(sharedDir(), "swtpm-localca.conf");
    const lcaOpts = join(sharedDir(), "swtpm-localca.options");
    writeFileSync(lcaConf, `statedir = ${dir}\nsigningkey = ${dir}/signkey.pem\nissuercert = ${dir}/issuercert.pem\ncertserial = ${dir}/certserial\n`);
    writeFileSync(lcaOpts, "--platform-manufacturer tpmtrust-test\n--platform-version 2.1\n--platform-model swtpm\n");
    writeFileSync(conf, `create_certs_tool = swtpm_localca\ncreate_certs_tool_config = ${lcaConf}\ncreate_certs_tool_options = ${lcaOpts}\n`);
    args.push("--create-ek-cert", "--create-platform-cert", "--rsa-keysize", String(opts.rsaKeySize ?? 2048));
    ca = { dir, rootPem: "", intermediatePem: "" };
  } else {
    writeFileSync(conf, "");
  }
  args.push("--config", conf);
  // swtpm_setup puts its scratch directories under TMPDIR: keep them inside our work dir.
  const scratch = join(work, "tmp");
  mkdirSync(scratch);
  const run = setupQueue.then(() => exec("swtpm_setup", args, { ...process.env, TMPDIR: scratch }));
  setupQueue = run.catch(() => undefined);
  try {
    await run;
  } catch (e) {
    const log = existsSync(join(work, "swtpm_setup.log")) ? readFileSync(join(work, "swtpm_setup.log"), "utf8") : "";
    throw new Error(`${(e as Error).message}\n${log}`);
  }
  if (ca) {
    ca.rootPem = readFileSync(join(ca.dir, "swtpm-localca-rootca-cert.pem"), "utf8");
    ca.intermediatePem = readFileSync(join(ca.dir, "issuercert.pem"), "utf8");
  }
  return ca;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Starts a fresh swtpm (TPM 2.0) on a free port pair of 127.0.0.1. Call `stop()` when done. */
export async function startSwtpm(opts: SwtpmOptions = {}): Promise<Swtpm> {
  requireTool("swtpm");
  const work = mkdtempSync(join(tmpdir(), "tpmtrust-swtpm-"));
  const stateDir = join(work, "state");
  mkdirSync(stateDir);
  try {
    const ca = opts.ekCerts || opts.pcrBanks ? (requireTool("swtpm_setup"), await runSetup(work, stateDir, opts)) : undefined;
    const logFile = join(work, "swtpm.log");
    for (let attempt = 1; attempt <= 5; attempt++) {
      const port = await freePorts(2);
      const args = ["socket", "--tpm2", "--tpmstate", `dir=${stateDir}`];
      args.push("--server", `type=tcp,port=${port},bindaddr=127.0.0.1`, "--ctrl", `type=tcp,port=${port + 1},bindaddr=127.0.0.1`);
      if (opts.startupClear !== false) args.push("--flags", "startup-clear");
      const fd = openSync(logFile, "a");
      const child = spawn("swtpm", args, { stdio: ["ignore", fd, fd] });
      closeSync(fd);
      child.unref();
      if (child.pid === undefined) throw new Error("swtpm could not be spawned");
      live.set(child.pid, { child, dir: work });
      let up = false;
      for (let i = 0; i < 250 && !exited(child); i++) {
        if ((await canConnect(port)) && (await canConnect(port + 1))) {
          up = true;
          break;
        }
        await sleep(20);
      }
      if (!up) {
        live.delete(child.pid);
        if (!exited(child)) child.kill("SIGKILL");
        await waitExit(child, 2000);
        continue; // most likely a port race: try another pair
      }
      const pid = child.pid;
      let stopped = false;
      return {
        host: "127.0.0.1",
        port,
        ctrlPort: port + 1,
        tcti: `swtpm:host=127.0.0.1,port=${port}`,
        pid,
        stateDir,
        ...(ca ? { caDir: ca.dir, ca } : {}),
        async stop() {
          if (stopped) return;
          stopped = true;
          if (!exited(child)) {
            child.kill("SIGTERM");
            if (!(await waitExit(child, 5000))) {
              child.kill("SIGKILL");
              await waitExit(child, 5000);
            }
          }
          live.delete(pid);
          rmSync(work, { recursive: true, force: true });
        },
      };
    }
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    throw new Error(`swtpm did not start after 5 attempts:\n${log}`);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

export interface SwtpmChardev {
  /** our end of the socketpair: a raw, non-blocking descriptor speaking the /dev/tpm0 protocol */
  fd: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts `swtpm chardev --tpm2 --fd 3` on one end of a socketpair (node creates child stdio pipes
 * with socketpair(2)) and hands out the raw descriptor of the other end, so a character-device
 * client can be tested without /dev/tpm*. Node's own reader on that end is stopped first, through
 * the socket's internal handle: nothing but the caller reads the descriptor.
 */
export async function startSwtpmChardev(): Promise<SwtpmChardev> {
  requireTool("swtpm");
  const work = mkdtempSync(join(tmpdir(), "tpmtrust-swtpm-"));
  const fd = openSync(join(work, "swtpm.log"), "a");
  const child = spawn("swtpm", ["chardev", "--tpm2", "--fd", "3", "--tpmstate", `dir=${work}`, "--flags", "startup-clear"], {
    stdio: ["ignore", fd, fd, "pipe"],
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error("swtpm could not be spawned");
  live.set(child.pid, { child, dir: work });
  const handle = (child.stdio[3] as unknown as { _handle?: { readStop(): number; fd: number } })._handle;
  if (!handle || handle.fd < 0) throw new Error("no descriptor for the socketpair end");
  handle.readStop();
  const pid = child.pid;
  return {
    fd: handle.fd,
    pid,
    async stop() {
      if (!exited(child)) {
        child.kill("SIGTERM");
        if (!(await waitExit(child, 5000))) child.kill("SIGKILL");
        await waitExit(child, 5000);
      }
      (child.stdio[3] as { destroy(): void }).destroy();
      live.delete(pid);
      rmSync(work, { recursive: true, force: true });
    },
  };
}
