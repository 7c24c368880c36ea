/**
 * A real KMS for tests: Debian's PyKMIP server (python3-pykmip) on 127.0.0.1, with a throwaway CA,
 * a server certificate and client certificates made by openssl, mutual TLS 1.2, and its SQLite
 * database in a temp dir (so a restart keeps its keys). Started by `/usr/bin/python3` (not another
 * Python on the PATH), stopped by its PID. A missing PyKMIP always throws with an install hint.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "./ports.js";

export const PYKMIP_SERVER = "/usr/bin/pykmip-server";

export interface KmipCredentials {
  ca: string;
  cert: string;
  key: string;
}

export interface PyKmip {
  host: string;
  port: number;
  dir: string;
  /** a client certificate the server accepts */
  client: KmipCredentials;
  /** a client certificate issued by another CA (trusting the KMS's CA): the server refuses it */
  stranger: KmipCredentials;
  /** the settings of a tpmtrust kmip key server for `client` */
  settings(c?: KmipCredentials): { host: string; port: number; ca: string; cert: string; key: string };
  stop(): Promise<void>;
  start(): Promise<void>;
  cleanup(): Promise<void>;
}

const openssl = (dir: string, args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });

function makeCa(dir: string, name: string): void {
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${name}`]);
}

function issue(dir: string, ca: string, name: string): void {
  openssl(dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
  writeFileSync(join(dir, `${name}.ext`), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`]);
  chmodSync(join(dir, `${name}.key`), 0o600);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function startPyKmip(): Promise<PyKmip> {
  if (!existsSync(PYKMIP_SERVER)) {
    const why = process.env.CI === "true" ? "CI=true requires PyKMIP" : "tests need a real KMS and never skip";
    throw new Error(`${PYKMIP_SERVER} not found (${why}). Install as root: scripts/setup.sh, or apt-get install -y python3-pykmip`);
  }
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-pykmip-"));
  makeCa(dir, "kms-ca");
  makeCa(dir, "other-ca");
  issue(dir, "kms-ca", "server");
  issue(dir, "kms-ca", "tpmtrust");
  issue(dir, "other-ca", "stranger");
  const port = await freePorts(1);
  const conf = join(dir, "server.conf");
  writeFileSync(
    conf,
    [
      "[server]",
      "hostname=127.0.0.1",
      `port=${port}`,
      `certificate_path=${join(dir, "server.pem")}`,
      `key_path=${join(dir, "server.key")}`,
      `ca_path=${join(dir, "kms-ca.pem")}`,
      "auth_suite=TLS1.2",
      "enable_tls_client_auth=True",
      `database_path=${join(dir, "pykmip.db")}`,
      `policy_path=${dir}`,
      "logging_level=INFO",
      "",
    ].join("\n"),
  );
  let child: ChildProcess | undefined;
  let exited: string | undefined;
  const cred = (name: string, ca: string): KmipCredentials => ({ ca: join(dir, `${ca}.pem`), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) });
  const kms: PyKmip = {
    host: "127.0.0.1",
    port,
    dir,
    client: cred("tpmtrust", "kms-ca"),
    stranger: cred("stranger", "kms-ca"),
    settings: (c = kms.client) => ({ host: "127.0.0.1", port, ...c }),
    async start() {
      exited = undefined;
      // its own process group: PyKMIP forks a process per client session, and all of them go when it stops
      const c = spawn("/usr/bin/python3", [PYKMIP_SERVER, "-f", conf, "-l", join(dir, "server.log")], { stdio: ["ignore", "ignore", "pipe"], detached: true });
      let stderr = "";
      c.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      c.once("exit", (code, signal) => (exited = `exited with ${code ?? signal}: ${stderr}`));
      child = c;
      // ready when it accepts connections (it binds after loading its crypto engine)
      for (let i = 0; i < 600 && !exited; i++) {
        if (await accepts(port)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`pykmip-server did not start on 127.0.0.1:${port}: ${exited ?? "no listener after 60 s"}; log: ${readLog(dir)}`);
    },
    async stop() {
      const c = child;
      child = undefined;
      if (!c || exited) return;
      const gone = new Promise<void>((r) => c.once("exit", () => r()));
      // SIGKILL to the group: PyKMIP's SIGTERM handler waits for open client sessions; a KMS that dies is what tests want
      process.kill(-c.pid!, "SIGKILL");
      await gone;
      // the port is free once nothing accepts on it
      while (await accepts(port)) await new Promise((r) => setTimeout(r, 50));
    },
    async cleanup() {
      await kms.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await kms.start();
  return kms;
}

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, "server.log"), "utf8").split("\n").slice(-20).join("\n");
  } catch {
    return "(no log)";
  }
}
