import { canonicalJson, toJsonValue } from "../audit-chain.js";
import type { Ctx } from "../ctx.js";
import { preparedSql } from "../prepared.js";
import type { NewAuditEntry } from "./audit.js";
import type { AttestationsTable, TokensTable } from "../schema.js";
import { pcrsJson, type NewHostEvidence } from "./host-evidence.js";

/**
 * PostgreSQL, one statement (so one round trip, atomic without BEGIN/COMMIT): consumes the nonce,
 * updates the host, stores the attestation, its token, the host's evidence and the audit entry. The
 * nonce is consumed only while the host row, locked first, still has the health `$6`; everything
 * else hangs off the host update, so either all of it happens or (nonce spent, expired or unknown,
 * or the health moved) nothing does.
 */
const RECORD_UNCHANGED = `with
n as (
  update nonces set consumed_at = $4::bigint
  where value = $1::text and purpose = $2::text and subject = $3::text and consumed_at is null and expires_at > $4::bigint
    and exists (select 1 from hosts where name = $5::text and health = $6::text for update)
  returning 1
),
h as (
  update hosts set health_reason = $7::text, updated_at = $4::bigint, last_attestation_at = $4::bigint, deadline_at = $8::bigint
  where name = $5::text and health = $6::text and exists (select 1 from n)
  returning name
),
a as (
  insert into attestations (id, host_name, at, verdict, reason_code, ak_name, pcr_digest, diff, details)
  select $9::text, name, $4::bigint, $10::text, $7::text, $11::text, $12::text, $13::text, $14::text from h
),
t as (
  insert into tokens (jti, host_name, kid, attestation_id, issued_at, expires_at, revoked_at)
  select $15::text, name, $16::text, $9::text, $17::bigint, $18::bigint, null from h where $15::text is not null
),
e as (
  insert into host_evidence (host_name, at, pcrs, event_log, event_log_sha256)
  select name, $4::bigint, $19::text, $20::text, case when $20::text is not null then $21::text end from h where $19::text is not null
  on conflict (host_name) do update set at = excluded.at, pcrs = excluded.pcrs,
    event_log = case when excluded.event_log is not null then excluded.event_log when host_evidence.event_log_sha256 = $21::text then host_evidence.event_log end,
    event_log_sha256 = case when excluded.event_log is not null or host_evidence.event_log_sha256 = $21::text then $21::text end
),
l as (
  insert into audit (at, actor, action, subject, outcome, details)
  select $4::bigint, $22::text, $23::text, name, $24::text, $25::text from h
)
select count(*)::int as recorded from h`;
const recordUnchanged = preparedSql<{ recorded: number }>(RECORD_UNCHANGED);

export interface UnchangedVerdict {
  nonce: { value: string; purpose: string; subject: string };
  /** the host's health before and after */
  health: string;
  deadlineAt: number;
  attestation: AttestationsTable;
  token: Omit<TokensTable, "revoked_at"> | null;
  evidence: NewHostEvidence | null;
  /** the verdict's audit entry (its subject is the host) */
  audit: Omit<NewAuditEntry, "subject" | "at">;
}

/** Attestation verdicts recorded in one statement (PostgreSQL). */
export function verdictsRepo(ctx: Ctx) {
  return {
    /**
     * Records a verdict that leaves its host's health as it was (the steady state). False, with
     * nothing changed, when it cannot: on SQLite, or the nonce is not spendable, or the host's health
     * is not (or no longer) `health`; the caller then takes the general path, which says why. A
     * statement that fails (e.g. the audit log cannot be written) changes nothing either.
     */
    async recordUnchanged(v: UnchangedVerdict): Promise<boolean> {
      if (ctx.dialect !== "postgres") return false;
      const a = v.attestation;
      const t = v.token;
      const e = v.evidence;
      const { rows } = await recordUnchanged(ctx, [
        v.nonce.value,
        v.nonce.purpose,
        v.nonce.subject,
        a.at,
        a.host_name,
        v.health,
        a.reason_code,
        v.deadlineAt,
        a.id,
        a.verdict,
        a.ak_name,
        a.pcr_digest,
        a.diff,
        a.details,
        t?.jti ?? null,
        t?.kid ?? null,
        t?.issued_at ?? null,
        t?.expires_at ?? null,
        e ? pcrsJson(e.pcrs) : null,
        e?.eventLog ? e.eventLog.toString("base64") : null,
        e?.eventLogSha256?.toString("hex") ?? null,
        v.audit.actor,
        v.audit.action,
        v.audit.outcome,
        canonicalJson(toJsonValue(v.audit.details)),
      ]);
      return rows[0]?.recorded === 1;
    },
  };
}
