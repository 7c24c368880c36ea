import { TpmTrustError } from "../../errors.js";
import { DeviceTransport } from "./device.js";
import { ReplayTransport } from "./record.js";
import { SwtpmTransport } from "./swtpm.js";
import type { Transport } from "./transport.js";

export type TpmSpec =
  | { kind: "swtpm"; host: string; port: number }
  | { kind: "device"; path: string }
  | { kind: "replay"; path: string };

export const TPM_SPEC_HELP =
  "swtpm:host=H,port=P (control port P+1) | device:/dev/tpmrm0 | /dev/tpmrm0 | /dev/tpm0 | replay:FILE (a recorded session)";

function usage(spec: string, why: string): TpmTrustError {
  return new TpmTrustError("ERR_USAGE", `--tpm ${JSON.stringify(spec)}: ${why}; expected ${TPM_SPEC_HELP}`, { spec });
}

/** Parses a `--tpm` value. Defaults for swtpm follow the tpm2-tss TCTI: 127.0.0.1:2321. */
export function parseTpmSpec(spec: string): TpmSpec {
  if (spec === "swtpm" || spec.startsWith("swtpm:")) {
    let host = "127.0.0.1";
    let port = 2321;
    const conf = spec.slice("swtpm:".length);
    for (const part of conf ? conf.split(",") : []) {
      const eq = part.indexOf("=");
      const key = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? "" : part.slice(eq + 1);
      if (key === "host") {
        if (!/^[A-Za-z0-9._:-]+$/.test(value)) throw usage(spec, `host ${JSON.stringify(value)} is not a host name or address`);
        host = value;
      } else if (key === "port") {
        if (!/^[0-9]{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65534) throw usage(spec, `port ${JSON.stringify(value)} is not 1..65534`);
        port = Number(value);
      } else {
        throw usage(spec, `unknown swtpm option ${JSON.stringify(key)}`);
      }
    }
    return { kind: "swtpm", host, port };
  }
  if (spec.startsWith("device:")) {
    const path = spec.slice("device:".length);
    if (!path.startsWith("/")) throw usage(spec, "the device path must be absolute");
    return { kind: "device", path };
  }
  if (spec.startsWith("/")) return { kind: "device", path: spec };
  if (spec.startsWith("replay:") && spec.length > "replay:".length) return { kind: "replay", path: spec.slice("replay:".length) };
  throw usage(spec, "unrecognised TPM");
}

export interface OpenOptions {
  timeoutMs?: number;
}

/** Opens the transport a `--tpm` value names. */
export async function openTransport(spec: string, opts: OpenOptions = {}): Promise<Transport> {
  const s = parseTpmSpec(spec);
  switch (s.kind) {
    case "swtpm":
      return new SwtpmTransport({ host: s.host, port: s.port, ...opts });
    case "device":
      return DeviceTransport.open(s.path, opts);
    case "replay":
      return ReplayTransport.load(s.path);
  }
}
