/** `tpmtrust device provision`: the device side of DPS TPM provisioning against tpmtrust (or Azure DPS). */
import { type Command, Option } from "commander";
import { DEVICE_KEY_HANDLE, provisionDevice } from "../../agent/dps-device.js";
import { ServiceClient } from "../../agent/http.js";
import { EK_ALG_KINDS, withTpm } from "../../agent/tpm.js";
import { TpmTrustError } from "../../errors.js";
import { TPM_SPEC_HELP } from "../../tpm/transport/index.js";
import { readInput } from "../files.js";
import { action, printJson } from "../run.js";

function handleArg(v: string): number {
  if (!/^0x81[0-9a-fA-F]{6}$/.test(v)) throw new TpmTrustError("ERR_USAGE", `--handle must be a persistent handle like 0x81000100, got "${v}"`);
  return parseInt(v.slice(2), 16);
}

export function register(program: Command): void {
  program
    .command("device")
    .description("a device with a TPM (exit 0 assigned, 1 refused, 2 unusable input or unreachable)")
    .command("provision")
    .description("register with DPS TPM attestation: prove the EK and SRK, keep the HMAC key in the TPM, print the assignment")
    .requiredOption("--id-scope <scope>", "the ID scope (tpmtrust provisioning scope)")
    .requiredOption("--server <url>", "the provisioning service, e.g. https://provisioning.example:7443")
    .addOption(new Option("--tpm <spec>", `the TPM: ${TPM_SPEC_HELP}`).default("/dev/tpmrm0"))
    .option("--registration-id <id>", "default: the DPS default (base32 of SHA-256 of the EK's TPM2B_PUBLIC)")
    .option("--handle <handle>", "persistent handle for the HMAC key (what is there is replaced)", `0x${DEVICE_KEY_HANDLE.toString(16)}`)
    .addOption(new Option("--ek <alg>", "the EK: rsa (DPS's) or ecc (P-256; tpmtrust only)").choices(Object.keys(EK_ALG_KINDS)).default("rsa"))
    .option("--payload <json>", "custom data for the custom allocation webhook (JSON)")
    .option("--ca-cert <file>", "PEM CA certificate to trust for the service's TLS certificate")
    .option("--json", "print the whole operation result as JSON")
    .action(
      action(
        async (o: { idScope: string; server: string; tpm: string; registrationId?: string; handle: string; ek: keyof typeof EK_ALG_KINDS; payload?: string; caCert?: string; json?: boolean }) => {
          let payload: unknown;
          if (o.payload !== undefined) {
            try {
              payload = JSON.parse(o.payload);
            } catch {
              throw new TpmTrustError("ERR_USAGE", "--payload must be JSON");
            }
          }
          const svc = new ServiceClient({ url: o.server, ca: o.caCert ? readInput(o.caCert, "--ca-cert") : undefined });
          const handle = handleArg(o.handle);
          const r = await withTpm(o.tpm, (tpm) =>
            provisionDevice(tpm, svc, { idScope: o.idScope, handle, ek: EK_ALG_KINDS[o.ek], ...(o.registrationId ? { registrationId: o.registrationId } : {}), ...(payload !== undefined ? { payload } : {}) }),
          );
          if (o.json) {
            const { tpm: _key, ...state } = r.registrationState;
            printJson({ ...r, registrationState: state });
          } else {
            const s = r.registrationState;
            process.stdout.write(`assigned registrationId=${r.registrationId} hub=${s.assignedHub} deviceId=${s.deviceId} substatus=${s.substatus} keyHandle=0x${r.keyHandle.toString(16)}\n`);
          }
        },
      ),
    );
}
