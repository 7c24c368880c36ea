/**
 * recordVerdict step: one transaction consumes the nonce and stores the attestation, the token
 * issued for it, the host's new health and deadline, the audit entry, and (on a health change) the
 * webhook notifications and token revocations, so a verdict is never half recorded. On SQLite,
 * verdicts that arrive together share one commit, each in its own savepoint (Store.groupedTransaction).
 */
import type { Attestation, Host, Store } from "../store/index.js";
import type { AttestConfig } from "./config.js";
import { healthChanged, type HealthChange } from "./health.js";
import type { PolicyRef, SignedToken } from "../tokens/tokens.js";

export interface VerdictInput {
  /** the challenge this evidence answers: consumed first, so a reused or expired nonce records nothing */
  nonce: { value: Buffer; purpose: string; subject: string };
  host: Pick<Host, "name" | "hardwareClass">;
  akName: Buffer;
  verdict: "pass" | "fail";
  /** stable ERR_… code of a failure */
  code: string | null;
  message?: string;
  pcrDigest?: Buffer;
  diff?: unknown;
  policies: PolicyRef[];
  details: Record<string, unknown>;
  token?: SignedToken;
}

export async function recordVerdict(store: Store, cfg: AttestConfig, at: number, v: VerdictInput): Promise<{ attestation: Attestation; change?: HealthChange }> {
  const actor = `host:${v.host.name}`;
  const health = v.verdict === "pass" ? "healthy" : "unhealthy";
  return store.groupedTransaction(async (tx) => {
    await tx.nonces.consume({ ...v.nonce, at });
    // the host row first, then the audit head: every writer takes them in this order (no deadlocks)
    const r = await tx.hosts.attested(v.host.name, { health, reason: v.code, at, deadlineAt: at + cfg.intervalMs * cfg.grace });
    const attestation = await tx.attestations.record({
      hostName: v.host.name,
      verdict: v.verdict,
      reasonCode: v.code,
      akName: v.akName,
      pcrDigest: v.pcrDigest ?? null,
      diff: v.diff ?? null,
      details: { policies: v.policies, ...(v.message ? { message: v.message } : {}), ...v.details },
      at,
    });
    await tx.audit.append({
      actor,
      action: "attestation.verdict",
      subject: v.host.name,
      outcome: v.verdict === "pass" ? "success" : "failure",
      details: {
        attestationId: attestation.id,
        verdict: v.verdict,
        code: v.code,
        akName: v.akName,
        pcrDigest: v.pcrDigest ?? null,
        policies: v.policies,
        // the token issued on this verdict: one audit entry per attestation keeps appends cheap
        token: v.token ? { jti: v.token.jti, kid: v.token.kid, expiresAt: v.token.expiresAt } : null,
      },
      at,
    });
    if (v.token) {
      const t = v.token;
      await tx.tokens.record({ jti: t.jti, hostName: v.host.name, kid: t.kid, attestationId: attestation.id, issuedAt: t.issuedAt, expiresAt: t.expiresAt });
    }
    if (!r.changed) return { attestation };
    const change: HealthChange = { host: v.host.name, hardwareClass: v.host.hardwareClass, previous: r.previous, health, reason: v.code, at, attestationId: attestation.id };
    await healthChanged(tx, change, actor);
    return { attestation, change };
  });
}
