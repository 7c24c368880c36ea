import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { TpmTrustError } from "../../errors.js";
import { makeCredential, encodeCredentialFile } from "../../crypto/credential.js";
import { parseKeyInput } from "../../verify/inputs.js";
import { hexArg, readInput } from "../files.js";
import { action } from "../run.js";

export function register(program: Command): void {
  program
    .command("makecredential")
    .description("make a credential for TPM2_ActivateCredential (tpm2-tools credential file format)")
    .requiredOption("--ek <file>", "the EK: TPM2B_PUBLIC or TPMT_PUBLIC")
    .requiredOption("--name <hex>", "Name of the object the credential is bound to (e.g. the AK)")
    .requiredOption("--secret <file>", "the secret, at most one digest of the EK's nameAlg (32 bytes for SHA-256)")
    .requiredOption("--out <file>", "where to write BADCC0DE ‖ 00000001 ‖ TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET")
    .action(
      action((o: { ek: string; name: string; secret: string; out: string }) => {
        const ek = parseKeyInput(readInput(o.ek, "--ek"), "--ek");
        if (!ek.public) throw new TpmTrustError("ERR_USAGE", "--ek must be a TPM2B_PUBLIC or TPMT_PUBLIC: MakeCredential needs the EK's nameAlg and symmetric parameters");
        const blob = makeCredential(ek.public, hexArg(o.name, "--name"), readInput(o.secret, "--secret"));
        try {
          writeFileSync(o.out, encodeCredentialFile(blob));
        } catch (e) {
          throw new TpmTrustError("ERR_IO", `--out: cannot write ${o.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }),
    );
}
