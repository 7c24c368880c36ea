/**
 * Software hosts that attest with IMA (test/helpers/software-fleet.ts plus a measurement list): a
 * quote over the fleet's PCRs 0–7 and PCR 10 extended (every bank) with the entries of the boot so far,
 * signed by the host's AK, with the increment of the list that goes with it.
 */
import { createHash } from "node:crypto";
import { addPolicy } from "../../src/attest/policies.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { learnRuntimePolicy } from "../../src/policy/runtime.js";
import type { Store } from "../../src/store/index.js";
import { hashAlgByName } from "../../src/tpm/constants.js";
import { encodeTpmsAttest, pcrSelection } from "../../src/tpm/structures.js";
import type { TpmsAttest } from "../../src/tpm/types.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { parseImaList, replayIma } from "../../src/verify/ima/index.js";
import { entry, type Built } from "../verify/ima-build.js";
import { fleetPcrs, FLEET_LOG, quoteAttest, seedHosts, signEcdsa, softHost, type SoftHost } from "./software-fleet.js";

export const IMA_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 10];
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest();

/** A boot's list as it begins: boot_aggregate (SHA-256 of the fleet's PCRs 0–7), then files (one in the excluded /tmp/). */
export const IMA_BOOT: Built[] = (() => {
  const p = fleetPcrs().sha256;
  const aggregate = sha256(Buffer.concat([0, 1, 2, 3, 4, 5, 6, 7].map((i) => Buffer.from(p[String(i)], "hex"))));
  return [entry({ path: "boot_aggregate", digest: aggregate }), ...["/usr/lib/systemd/systemd", "/usr/lib/libc.so.6", "/usr/sbin/sshd", "/etc/ld.so.cache", "/usr/bin/bash", "/tmp/build/cc1"].map((f) => entry({ path: f, digest: sha256(f) }))];
})();
/** Files the policy allows that the host runs later in its boot. */
export const IMA_LATER: Built[] = ["/usr/bin/ls", "/usr/bin/cat", "/usr/bin/grep"].map((f) => entry({ path: f, digest: sha256(f) }));
/** A file the policy does not allow. */
export const imaEvil = (path: string): Built => entry({ path, digest: sha256(`evil ${path}`) });
export const imaList = (e: Built[]): Buffer => Buffer.concat(e.map((x) => x.binary));

/** The class's policies: the fleet baseline and a runtime policy learned from IMA_BOOT and IMA_LATER, excluding /tmp/. */
export async function addImaClass(store: Store, hardwareClass: string): Promise<void> {
  await addPolicy(store, "test", Date.now(), { kind: "baseline", name: `${hardwareClass}-fleet`, hardwareClass, document: learnBaseline(`${hardwareClass}-fleet`, [parseEventLog(FLEET_LOG)], [0, 1, 2, 3, 4, 5, 6, 7]) });
  const runtime = learnRuntimePolicy(`${hardwareClass}-runtime`, parseImaList(imaList([...IMA_BOOT, ...IMA_LATER])), ["/tmp/"]);
  await addPolicy(store, "test", Date.now(), { kind: "runtime", name: `${hardwareClass}-runtime`, hardwareClass, document: runtime });
}

/** A registered host with a bound AK in `hardwareClass`. */
export async function imaHost(store: Store, name: string, hardwareClass: string): Promise<SoftHost> {
  const h = softHost(name);
  await seedHosts(store, [h]);
  await store.hosts.update(h.name, { hardwareClass }, Date.now());
  return h;
}

export interface ImaRound {
  /** every entry of the boot so far: what PCR 10 was extended with when the TPM quoted */
  extended: Built[];
  /** the increment sent, and the index of its first entry */
  sent: Buffer;
  startIndex: number;
  /** the boot (default 7) */
  resetCount?: number;
}

/** POST /v1/attestations body answering `nonce` with a quote over the fleet's PCRs and PCR 10 as `o.extended` left it. */
export function imaEvidence(h: SoftHost, nonce: Buffer, o: ImaRound): Record<string, unknown> {
  const pcrs = fleetPcrs();
  const banks = Object.keys(pcrs);
  const ten = replayIma(parseImaList(imaList(o.extended)), banks).pcrs;
  for (const b of banks) pcrs[b]["10"] = ten[b][10].toString("hex");
  const base = quoteAttest(h, nonce);
  const digest = sha256(Buffer.concat(banks.flatMap((b) => IMA_PCRS.map((p) => Buffer.from(pcrs[b][String(p)], "hex")))));
  const attest = encodeTpmsAttest({ ...base, clockInfo: { ...base.clockInfo, resetCount: o.resetCount ?? 7 }, attested: { pcrSelect: banks.map((b) => pcrSelection(hashAlgByName(b)!, IMA_PCRS)), pcrDigest: digest } } as TpmsAttest);
  return {
    akNameHex: h.akName.toString("hex"),
    nonceHex: nonce.toString("hex"),
    quotes: [{ attest: attest.toString("base64"), signature: signEcdsa(h.akKey, attest).toString("base64") }],
    pcrs,
    eventLog: FLEET_LOG.toString("base64"),
    ima: { startIndex: o.startIndex, list: o.sent.toString("base64") },
  };
}
