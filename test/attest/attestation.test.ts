/**
 * Host attestation end to end over real HTTP on 127.0.0.1, on SQLite and PostgreSQL, with swtpm
 * hosts whose PCRs hold a real event log: baselines learned from that log pass, from another log
 * fail with a diff; tokens verify with the JWKS; the negative cases carry their stable codes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { learnBaseline } from "../../src/policy/baseline.js";
import { codeIntegrityPolicy } from "../../src/policy/code-integrity.js";
import { secureBootPolicy } from "../../src/policy/secure-boot.js";
import { learnSoftware } from "../../src/policy/software.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { previewPolicy } from "../../src/attest/policies.js";
import { cli } from "../helpers/cli.js";
import { verifyAttestationToken } from "../../src/tokens/tokens.js";
import { BACKENDS, type Backend } from "../helpers/store.js";
import { addHost, attestOnce, challenge, evidence, postJson, readLog, serveAttestation, type Service, startTpmHost, type TpmHost } from "../helpers/attest-host.js";
import { FlushContext } from "../../src/tpm/commands/index.js";

const RHEL = "rhel8-gce-uefi.bin";
const LAPTOP = "laptop-startup-locality3.bin";


async function addPolicy(s: Service, body: Record<string, unknown>): Promise<any> {
  const r = await postJson(`${s.url}/v1/policies`, body, { authorization: `Bearer ${s.admin}` });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

const baselineOf = (file: string, name: string, pcrs = [0, 1, 2, 3, 4, 5, 6, 7]) => learnBaseline(name, [parseEventLog(readLog(file))], pcrs);

let rhel: TpmHost;
before(async () => {
  rhel = await startTpmHost({ logFile: RHEL });
});
after(() => rhel?.close());

for (const [dialect, make] of BACKENDS) {
  describe(`attestation on ${dialect}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    test("a host whose PCRs hold a real log passes the baseline learned from it, with software, CI and Secure Boot policies; the token verifies with the JWKS", async () => {
      const s = await serveAttestation(await backend.newUrl());
      try {
        await addHost(s.store, rhel, { name: "gce-1", hardwareClass: "gce-n1" });
        const base = await addPolicy(s, { kind: "baseline", name: "gce", hardwareClass: "gce-n1", document: baselineOf(RHEL, "gce") });
        // the kernel GRUB measured into PCR 9 stands for a measured code-integrity policy file
        const kernel = parseEventLog(readLog(RHEL)).events.find((e) => e.pcr === 9)!;
        await addPolicy(s, { kind: "ci", name: "kernel-policy", hardwareClass: "gce-n1", document: codeIntegrityPolicy("kernel-policy", kernel.digests.sha256.toString("hex"), [9]) });
        await addPolicy(s, { kind: "secureboot", name: "sb", document: secureBootPolicy("sb") });
        await addPolicy(s, { kind: "software", name: "rhel8", hardwareClass: "gce-n1", document: learnSoftware("rhel8", [parseEventLog(readLog(RHEL))]) });

        const c = await challenge(s.url, rhel, ["sha1", "sha256", "sha384", "sha512"]);
        assert.equal(c.host, "gce-1");
        assert.deepEqual(c.pcrSelection.map((x) => x.bank), ["sha1", "sha256", "sha384", "sha512"]);
        assert.deepEqual(c.pcrSelection[1].pcrs, [0, 1, 2, 3, 4, 5, 6, 7, 9]);
        const r = await postJson(`${s.url}/v1/attestations`, await evidence(rhel, c));
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.verdict, "pass", JSON.stringify(r.body.diff));
        assert.equal(r.body.code, null);
        assert.deepEqual(r.body.policies.map((p: { kind: string }) => p.kind).sort(), ["baseline", "ci", "secureboot", "software"]);
        assert.ok(r.body.explainedPcrs.some((e: { bank: string; pcr: number }) => e.bank === "sha384" && e.pcr === 4));

        // the token verifies against the JWKS served over HTTP, and as a relying party inside tpmtrust
        const { payload, protectedHeader } = await jwtVerify(r.body.token, createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`)), { issuer: "tpmtrust", algorithms: ["ES256"] });
        assert.equal(protectedHeader.alg, "ES256");
        assert.equal(payload.sub, "gce-1");
        assert.equal(payload.hwclass, "gce-n1");
        assert.equal(payload.verdict, "pass");
        assert.equal(payload["ear.status"], "affirming");
        assert.equal(payload.pcr_digest, r.body.pcrDigestHex);
        assert.ok((payload.policies as { id: string }[]).some((p) => p.id === base.id));
        const v = await verifyAttestationToken(s.store, r.body.token, Date.now());
        assert.equal(v.record.hostName, "gce-1");

        // an unchanged boot named by its log's SHA-256: judged as the log was; an unknown hash asks for the log, nonce unspent
        const byHash = await postJson(`${s.url}/v1/attestations`, await evidence(rhel, await challenge(s.url, rhel), { logByHash: true }));
        assert.equal(byHash.body.verdict, "pass", JSON.stringify(byHash.body));
        assert.deepEqual(byHash.body.explainedPcrs, r.body.explainedPcrs);
        const c2 = await challenge(s.url, rhel);
        const other = { ...(await evidence(rhel, c2)), eventLog: undefined, eventLogSha256: "ab".repeat(32) };
        const required = await postJson(`${s.url}/v1/attestations`, other);
        assert.deepEqual([required.status, required.body.code], [422, "ERR_EVENTLOG_REQUIRED"]);
        const retried = await postJson(`${s.url}/v1/attestations`, { ...other, eventLogSha256: undefined, eventLog: rhel.log!.toString("base64") });
        assert.equal(retried.body.verdict, "pass");

        const host = await s.store.hosts.get("gce-1");
        assert.equal(host?.health, "healthy");
        const audit = await s.store.audit.list({ subject: "gce-1", limit: 1000 });
        assert.ok(audit.some((e) => e.action === "attestation.verdict" && e.outcome === "success"));
        assert.ok(audit.some((e) => e.action === "attestation.verdict" && (e.details as { token: { jti: string } | null }).token?.jti === payload.jti));
        assert.ok((await s.store.audit.verify()).ok);
      } finally {
        await s.close();
      }
    });

    test("the same host fails a baseline learned from another machine's log, with a diff; its token is revoked", async () => {
      const s = await serveAttestation(await backend.newUrl());
      try {
        await addHost(s.store, rhel, { name: "gce-2", hardwareClass: "laptops" });
        await addPolicy(s, { kind: "baseline", name: "gce", hardwareClass: "laptops", document: baselineOf(RHEL, "gce") });
        const ok = await attestOnce(s.url, rhel);
        assert.equal(ok.body.verdict, "pass");

        const laptop = await addPolicy(s, { kind: "baseline", name: "laptop", hardwareClass: "laptops", document: baselineOf(LAPTOP, "laptop") });
        const gce = (await (await fetch(`${s.url}/v1/policies?kind=baseline`, { headers: { authorization: `Bearer ${s.admin}` } })).json()).find((p: { name: string }) => p.name === "gce");
        assert.equal((await fetch(`${s.url}/v1/policies/${gce.id}`, { method: "DELETE", headers: { authorization: `Bearer ${s.admin}` } })).status, 204);

        const r = await attestOnce(s.url, rhel);
        assert.equal(r.status, 200);
        assert.equal(r.body.verdict, "fail");
        assert.equal(r.body.code, "ERR_POLICY_FAILED");
        assert.equal(r.body.token, undefined);
        const d = r.body.diff.find((x: { id: string }) => x.id === laptop.id);
        assert.ok(d.diffs.length > 0);
        assert.ok(d.diffs.every((x: { pcr: number; meaning: string }) => x.pcr >= 0 && x.pcr <= 7 && x.meaning.length > 0));
        assert.ok(d.diffs.some((x: { kind: string }) => x.kind === "differs" || x.kind === "missing" || x.kind === "unexpected"));

        const host = await s.store.hosts.get("gce-2");
        assert.equal(host?.health, "unhealthy");
        assert.equal(host?.healthReason, "ERR_POLICY_FAILED");
        await assert.rejects(verifyAttestationToken(s.store, ok.body.token, Date.now()), { code: "ERR_TOKEN_REVOKED" });
        const timeline = await s.store.attestations.listForHost("gce-2");
        assert.deepEqual(timeline.map((a) => a.verdict), ["fail", "pass"]);
        assert.deepEqual(timeline[0].diff, r.body.diff);
      } finally {
        await s.close();
      }
    });

    test("negatives: replayed and expired nonces, tampered log, PCR mismatch, quote by an unbound AK", async () => {
      let offset = 0;
      const s = await serveAttestation(await backend.newUrl(), { now: () => Date.now() + offset });
      try {
        await addHost(s.store, rhel, { name: "gce-3", hardwareClass: "gce-n1" });
        await addPolicy(s, { kind: "baseline", name: "gce", hardwareClass: "gce-n1", document: baselineOf(RHEL, "gce") });

        // replayed nonce: the same evidence twice
        const c1 = await challenge(s.url, rhel);
        const e1 = await evidence(rhel, c1);
        assert.equal((await postJson(`${s.url}/v1/attestations`, e1)).body.verdict, "pass");
        const replay = await postJson(`${s.url}/v1/attestations`, e1);
        assert.equal(replay.status, 422);
        assert.equal(replay.body.code, "ERR_NONCE_REUSED");

        // expired nonce: the clock moves past the nonce's lifetime
        const c2 = await challenge(s.url, rhel);
        const e2 = await evidence(rhel, c2);
        offset = 10 * 60_000;
        const expired = await postJson(`${s.url}/v1/attestations`, e2);
        offset = 0;
        assert.equal(expired.status, 422);
        assert.equal(expired.body.code, "ERR_NONCE_EXPIRED");

        // tampered log: one digest byte flipped
        const tampered = Buffer.from(rhel.log!);
        const ev = parseEventLog(tampered).events.find((e) => e.pcr === 4 && e.typeName === "EV_EFI_BOOT_SERVICES_APPLICATION")!;
        tampered[tampered.indexOf(ev.digests.sha256) + 3] ^= 0x40;
        const t = await postJson(`${s.url}/v1/attestations`, await evidence(rhel, await challenge(s.url, rhel), { eventLog: tampered }));
        assert.equal(t.body.verdict, "fail");
        assert.equal(t.body.code, "ERR_EVENTLOG_REPLAY_MISMATCH");
        assert.equal(t.body.diff[0].pcr, 4);

        // PCR mismatch: a PCR value that is not what the TPM quoted
        const e3 = await evidence(rhel, await challenge(s.url, rhel));
        e3.pcrs.sha256["7"] = "00".repeat(32);
        const m = await postJson(`${s.url}/v1/attestations`, e3);
        assert.equal(m.body.verdict, "fail");
        assert.equal(m.body.code, "ERR_PCR_DIGEST_MISMATCH");

        // a PCR the policy needs left out of the quotes
        const c4 = await challenge(s.url, rhel);
        const e4 = await evidence(rhel, { ...c4, pcrSelection: c4.pcrSelection.filter((x) => x.bank !== "sha1") });
        const sel = await postJson(`${s.url}/v1/attestations`, e4);
        assert.equal(sel.body.code, "ERR_PCR_SELECTION_MISMATCH");

        // a quote by an AK that is not bound: unknown as a challenger, and as a signer for the bound AK
        const { createAk, createEk } = await import("../../src/tpm/commands/index.js");
        const ek = await createEk(rhel.client, "rsa2048");
        const unbound = await createAk(rhel.client, { handle: ek.handle, public: ek.public }, { type: "ecc" });
        await rhel.client.run(FlushContext, { flushHandle: ek.handle });
        const nb = await postJson(`${s.url}/v1/attestations/challenge`, { akNameHex: unbound.name.toString("hex") });
        assert.equal(nb.status, 422);
        assert.equal(nb.body.code, "ERR_AK_NOT_BOUND");
        const forged = await postJson(`${s.url}/v1/attestations`, await evidence(rhel, await challenge(s.url, rhel), { signer: unbound }));
        assert.equal(forged.status, 422);
        assert.equal(forged.body.code, "ERR_SIGNATURE_INVALID");
        await rhel.client.run(FlushContext, { flushHandle: unbound.handle });

        // none of the rejections above touched the host; the verdicts did
        const verdicts = (await s.store.attestations.listForHost("gce-3")).map((a) => a.reasonCode);
        assert.deepEqual(verdicts, ["ERR_PCR_SELECTION_MISMATCH", "ERR_PCR_DIGEST_MISMATCH", "ERR_EVENTLOG_REPLAY_MISMATCH", null]);
        const rejected = (await s.store.audit.list({ action: "attestation.reject", limit: 100 })).map((e) => (e.details as { code: string }).code);
        assert.deepEqual(rejected, ["ERR_NONCE_REUSED", "ERR_NONCE_EXPIRED", "ERR_SIGNATURE_INVALID"]);
        const refused = await s.store.audit.list({ action: "attestation.challenge", limit: 100 });
        assert.deepEqual(refused.map((e) => [e.outcome, (e.details as { code: string }).code]), [["failure", "ERR_AK_NOT_BOUND"]]);

      } finally {
        await s.close();
      }
    });

    test("HGS policy versions side by side: v2 is tried first, then v1; the verdict, the token and the record name the version that passed; policy add --dry-run", async () => {
      const dbUrl = await backend.newUrl();
      const s = await serveAttestation(dbUrl);
      try {
        await addHost(s.store, rhel, { name: "pv-1", hardwareClass: "pv" });
        await addPolicy(s, { kind: "baseline", name: "pv-v2", hardwareClass: "pv", document: baselineOf(RHEL, "pv-v2") });
        const v2 = await attestOnce(s.url, rhel);
        assert.equal(v2.body.verdict, "pass", JSON.stringify(v2.body));
        assert.equal(v2.body.policyVersion, "v2");

        // before a policy is added: the hosts it would turn unhealthy, judged on their last evidence
        const laptop = baselineOf(LAPTOP, "pv-v2");
        const worse = await previewPolicy(s.store, { kind: "baseline", name: "pv-v2", hardwareClass: "pv", document: laptop });
        assert.deepEqual(worse.map((h) => [h.host, h.outcome, h.turnsUnhealthy]), [["pv-1", "fail", true]]);
        assert.match(worse[0].reason, /would fail v2: baseline pv-v2/);
        const beside = await previewPolicy(s.store, { kind: "baseline", name: "pv-v1", hardwareClass: "pv", policyVersion: "v1", document: baselineOf(LAPTOP, "pv-v1") });
        assert.deepEqual(beside.map((h) => [h.host, h.outcome, h.policyVersion, h.turnsUnhealthy]), [["pv-1", "pass", "v2", false]]);
        const dir = mkdtempSync(join(tmpdir(), "tpmtrust-dry-run-"));
        try {
          writeFileSync(join(dir, "laptop.json"), JSON.stringify(laptop));
          const dry = await cli(["policy", "add", join(dir, "laptop.json"), "--kind", "baseline", "--class", "pv", "--dry-run", "--json", "--db", dbUrl]);
          assert.equal(dry.code, 0, dry.stderr);
          assert.deepEqual(dry.json().turnsUnhealthy, ["pv-1"]);
          assert.deepEqual((await s.store.policies.listHeads({ hardwareClass: "pv" })).map((p) => [p.name, p.version]), [["pv-v2", 1]]);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }

        // v1 artifacts added beside them leave the passing v2 host passing by v2
        await addPolicy(s, { kind: "baseline", name: "pv-v1", hardwareClass: "pv", policyVersion: "v1", document: baselineOf(LAPTOP, "pv-v1") });
        const still = await attestOnce(s.url, rhel);
        assert.equal(still.body.verdict, "pass", JSON.stringify(still.body));
        assert.equal(still.body.policyVersion, "v2");
        assert.deepEqual(still.body.policies.map((p: { name: string }) => p.name), ["pv-v2"]);

        // the v2 set no longer fits, the v1 set does: passes by v1, and says so
        await addPolicy(s, { kind: "baseline", name: "pv-v2", hardwareClass: "pv", document: baselineOf(LAPTOP, "pv-v2") });
        await addPolicy(s, { kind: "baseline", name: "pv-v1", hardwareClass: "pv", policyVersion: "v1", document: baselineOf(RHEL, "pv-v1") });
        const v1 = await attestOnce(s.url, rhel);
        assert.equal(v1.body.verdict, "pass", JSON.stringify(v1.body));
        assert.equal(v1.body.policyVersion, "v1");
        assert.deepEqual(v1.body.policies.map((p: { name: string }) => p.name), ["pv-v1"]);
        const { payload } = await jwtVerify(v1.body.token, createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`)), { issuer: "tpmtrust" });
        assert.equal(payload.policy_version, "v1");
        assert.equal((await s.store.attestations.get(v1.body.attestationId))?.details?.policyVersion, "v1");

        // neither set fits: fails, with the failed policies of both versions in the diff
        await addPolicy(s, { kind: "baseline", name: "pv-v1", hardwareClass: "pv", policyVersion: "v1", document: baselineOf(LAPTOP, "pv-v1") });
        const none = await attestOnce(s.url, rhel);
        assert.equal(none.body.verdict, "fail");
        assert.equal(none.body.code, "ERR_POLICY_FAILED");
        assert.equal(none.body.policyVersion, null);
        assert.deepEqual(none.body.diff.map((d: { name: string; policyVersion: string }) => [d.name, d.policyVersion]), [["pv-v2", "v2"], ["pv-v1", "v1"]]);
        assert.equal(none.body.token, undefined);
      } finally {
        await s.close();
      }
    });

    test("a v1 host (allow-listed EK) is judged only by v1 artifacts; a class without a baseline says so at the challenge", async () => {
      const s = await serveAttestation(await backend.newUrl());
      try {
        await addHost(s.store, rhel, { name: "v1-1", hardwareClass: "lab", policyVersion: "v1" });
        // the class without any baseline: the challenge names the missing baseline instead of an empty PCR selection
        const nb = await postJson(`${s.url}/v1/attestations/challenge`, { akNameHex: rhel.akNameHex });
        assert.equal(nb.status, 422);
        assert.equal(nb.body.code, "ERR_NO_BASELINE");
        assert.match(nb.body.detail ?? nb.body.message ?? "", /no baseline for class lab/);

        // a passing v2 baseline cannot help a host whose EK holds only for v1
        await addPolicy(s, { kind: "baseline", name: "lab", hardwareClass: "lab", document: baselineOf(RHEL, "lab") });
        const wrong = await attestOnce(s.url, rhel);
        assert.equal(wrong.body.verdict, "fail");
        assert.equal(wrong.body.code, "ERR_POLICY_VERSION");
        await addPolicy(s, { kind: "baseline", name: "lab-v1", hardwareClass: "lab", policyVersion: "v1", document: baselineOf(RHEL, "lab-v1") });
        const ok = await attestOnce(s.url, rhel);
        assert.equal(ok.body.verdict, "pass", JSON.stringify(ok.body));
        assert.equal(ok.body.policyVersion, "v1");
      } finally {
        await s.close();
      }
    });
  });
}
