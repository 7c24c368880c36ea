/**
 * The setting of the `ca inspect-request` tests on Windows-shaped requests
 * (test/ca/windows-request*.test.ts): one swtpm with two Windows-shaped clients of tpm2-tools +
 * openssl (test/helpers/windows-client.ts) — AIKs with SHA-1 and SHA-256 schemes — a stand-in CA
 * exchange certificate made by openssl for the EK info's recipient, and the CLI run on request files.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, type CliResult } from "./cli.js";
import { startSwtpm } from "./swtpm.js";
import { runTool, tpm2 } from "./tpm2tools.js";
import { bmp, octets, WindowsClient, type TpmKey } from "./windows-client.js";

export const OID = { kast: "1.3.6.1.4.1.311.21.24", ekInfo: "1.3.6.1.4.1.311.21.23", os: "1.3.6.1.4.1.311.13.2.3", ksp: "1.3.6.1.4.1.311.21.25", extReq: "1.2.840.113549.1.9.14" };
const ia5 = (s: string) => Buffer.concat([Buffer.from([0x16, s.length]), Buffer.from(s, "latin1")]);

/** extensionRequest with the template-name extension (1.3.6.1.4.1.311.20.2, BMPString) */
function templateExt(name: string): Buffer {
  const oid = Buffer.from("06092b0601040182371402", "hex");
  const val = octets(bmp(name));
  const ext = Buffer.concat([Buffer.from([0x30, oid.length + val.length]), oid, val]);
  return Buffer.concat([Buffer.from([0x30, ext.length]), ext]);
}

export interface WindowsRequestSetting {
  dir: string;
  /** SHA-1 and SHA-256 AIKs */
  win: WindowsClient;
  win256: WindowsClient;
  xchgPem: string;
  /** a key of `win` */
  key: TpmKey;
  /** the TPM Name of `k`, hex, as tpm2_readpublic reports it */
  nameOf(c: WindowsClient, k: TpmKey): Promise<string>;
  /** a Windows PKCS#10 for `k` (template, OS version, KSP, KAST `statement`, EK info), signed by `signer` (default `k`) */
  windowsCsr(c: WindowsClient, k: TpmKey, statement: Buffer, o?: { signer?: TpmKey }): Promise<Buffer>;
  write(name: string, data: Buffer | string): string;
  /** `tpmtrust ca inspect-request FILE [--json]` */
  inspect(file: string, json?: boolean): Promise<CliResult>;
  close(): Promise<void>;
}

export async function setup(): Promise<WindowsRequestSetting> {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-win-"));
  const swtpm = await startSwtpm();
  for (const d of ["a", "b"]) mkdirSync(join(dir, d));
  const win = await new WindowsClient(swtpm, join(dir, "a"), "sha1").init();
  const win256 = await new WindowsClient(swtpm, join(dir, "b"), "sha256").init();
  await runTool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Test CA-Xchg/O=tpmtrust-test", "-set_serial", "0x1234abcd", "-days", "1", "-keyout", join(dir, "xchg.key"), "-out", join(dir, "xchg.pem")]);
  const xchgPem = readFileSync(join(dir, "xchg.pem"), "utf8");
  const key = await win.newKey("userkey");
  return {
    dir,
    win,
    win256,
    xchgPem,
    key,
    async nameOf(c, k) {
      const out = c.f(`${k.name}.name`);
      await tpm2(c.tpm, "tpm2_readpublic", ["-c", k.ctx, "-n", out]);
      return readFileSync(out).toString("hex");
    },
    async windowsCsr(c, k, statement, o = {}) {
      return c.csr(k, "CN=win11.example.test", [
        { type: OID.extReq, values: [templateExt("WinTpmUser")] },
        { type: OID.os, values: [ia5("10.0.26200.2")] },
        { type: OID.ksp, values: [bmp("Microsoft Platform Crypto Provider")] },
        { type: OID.kast, values: [octets(statement)] },
        { type: OID.ekInfo, values: [await c.ekInfo(xchgPem)] },
      ], o.signer);
    },
    write(name, data) {
      const p = join(dir, name);
      writeFileSync(p, data);
      return p;
    },
    inspect: (file, json = true) => cli(["ca", "inspect-request", file, ...(json ? ["--json"] : [])]),
    async close() {
      await swtpm.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
