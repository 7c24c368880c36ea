/**
 * Host attestation without firmware: each real event log's digests are extended into a swtpm (in
 * every bank the log carries), the TPM quotes them, and `tpmtrust verify quote --eventlog` verifies
 * quote and log together — the replayed log must hash to the signed pcrDigest.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAk, createEk, Quote, startupOnce, TpmClient } from "../../src/tpm/commands/index.js";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { hashAlgByName } from "../../src/tpm/constants.js";
import { encodeTpm2bPublic, encodeTpmtSignature, pcrSelection } from "../../src/tpm/structures.js";
import { parseEventLog, replayEventLog } from "../../src/verify/eventlog/index.js";
import { extendLog, readLog } from "../helpers/attest-host.js";
import { startSwtpm } from "../helpers/swtpm.js";
import { cli } from "../helpers/cli.js";

const NONCE = Buffer.alloc(32, 0x5a);

for (const file of ["rhel8-gce-uefi.bin", "windows-option-rom-sha1.bin", "four-banks-incl-sha512.bin", "laptop-startup-locality3.bin"]) {
  test(`${file}: extended into swtpm, quoted per bank, verified with the log (and a tampered log rejected)`, async () => {
    const bytes = readLog(file);
    const log = parseEventLog(bytes);
    const banks = log.algorithms.map((a) => a.bank);
    const replayed = replayEventLog(log).pcrs;
    const locality = replayEventLog(log).startupLocality;
    // a log that says StartupLocality 3 needs TPM2_Startup at locality 3, so PCR 0 starts at 00…03
    const swtpm = await startSwtpm({ pcrBanks: banks, startupClear: locality === undefined });
    const transport = new SwtpmTransport({ port: swtpm.port, ctrlPort: swtpm.ctrlPort });
    const client = new TpmClient(transport);
    const dir = mkdtempSync(join(tmpdir(), "tpmtrust-elq-"));
    try {
      if (locality !== undefined) {
        await transport.init();
        await transport.setLocality(locality);
        await startupOnce(client);
        await transport.setLocality(0);
      }
      await extendLog(client, log);
      const ek = await createEk(client, "rsa2048");
      const ak = await createAk(client, { handle: ek.handle, public: ek.public }, { type: "rsa" });
      writeFileSync(join(dir, "ak.pub"), encodeTpm2bPublic(ak.public));
      writeFileSync(join(dir, "log.bin"), bytes);

      for (const bank of banks) {
        const pcrs = Object.keys(replayed[bank] ?? {}).map(Number).filter((p) => p < 24);
        const q = await client.run(Quote, { signHandle: ak.handle, qualifyingData: NONCE, PCRselect: [pcrSelection(hashAlgByName(bank)!, pcrs)] });
        writeFileSync(join(dir, `quote-${bank}.msg`), q.attest);
        writeFileSync(join(dir, `quote-${bank}.sig`), encodeTpmtSignature(q.signature));
        const args = ["verify", "quote", "--ak", join(dir, "ak.pub"), "--attest", join(dir, `quote-${bank}.msg`), "--signature", join(dir, `quote-${bank}.sig`), "--nonce", NONCE.toString("hex"), "--json"];
        const ok = await cli([...args, "--eventlog", join(dir, "log.bin")]);
        assert.equal(ok.code, 0, `${bank}: ${ok.stdout}${ok.stderr}`);
        const j = ok.json();
        assert.deepEqual(j.eventlog.explained.map((e: { pcr: number }) => e.pcr).sort((a: number, b: number) => a - b), pcrs.sort((a, b) => a - b));
        assert.ok(j.eventlog.events.length > 0);
        // flip one byte of this bank's digest in the last event of the highest quoted PCR
        const ev = log.events.filter((e) => e.pcr === Math.max(...pcrs) && e.digests[bank]).at(-1)!;
        const tampered = Buffer.from(bytes);
        tampered[bytes.indexOf(ev.digests[bank], ev.offset)] ^= 0xff;
        writeFileSync(join(dir, "tampered.bin"), tampered);
        const bad = await cli([...args, "--eventlog", join(dir, "tampered.bin")]);
        assert.equal(bad.code, 1, `${bank}: ${bad.stdout}`);
        assert.equal(bad.json().code, "ERR_EVENTLOG_REPLAY_MISMATCH");
      }
    } finally {
      await client.close().catch(() => undefined);
      await swtpm.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
