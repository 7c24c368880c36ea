import { randomUUID } from "node:crypto";
import { type Ctx, fromJsonOrNull, hexOrNull, insertOrConflict, toJson, unhexOrNull } from "../ctx.js";
import { preparedInsert } from "../prepared.js";
import type { AttestationsTable } from "../schema.js";

const insertAttestation = preparedInsert("attestations");

export type Verdict = "pass" | "fail" | "error";

export interface Attestation {
  id: string;
  hostName: string;
  at: number;
  verdict: Verdict;
  /** stable ERR_… code of a failure */
  reasonCode: string | null;
  akName: Buffer | null;
  pcrDigest: Buffer | null;
  /** the event-log/policy diff of a failure */
  diff: unknown;
  /** policy ids and versions evaluated, other facts */
  details: Record<string, unknown> | null;
}

export interface NewAttestation {
  hostName: string;
  verdict: Verdict;
  reasonCode?: string | null;
  akName?: Uint8Array | null;
  pcrDigest?: Uint8Array | null;
  diff?: unknown;
  details?: Record<string, unknown> | null;
  at: number;
}

export const toAttestation = (r: AttestationsTable): Attestation => ({
  id: r.id,
  hostName: r.host_name,
  at: r.at,
  verdict: r.verdict as Verdict,
  reasonCode: r.reason_code,
  akName: unhexOrNull(r.ak_name),
  pcrDigest: unhexOrNull(r.pcr_digest),
  diff: fromJsonOrNull(r.diff),
  details: fromJsonOrNull<Record<string, unknown>>(r.details),
});

/** The row of a new attestation (with a fresh id). */
export function attestationRow(a: NewAttestation): AttestationsTable {
  return {
    id: randomUUID(),
    host_name: a.hostName,
    at: a.at,
    verdict: a.verdict,
    reason_code: a.reasonCode ?? null,
    ak_name: hexOrNull(a.akName),
    pcr_digest: hexOrNull(a.pcrDigest),
    diff: a.diff === undefined || a.diff === null ? null : toJson(a.diff),
    details: a.details ? toJson(a.details) : null,
  };
}

/** Attestation results: one row per verdict, the host's timeline. */
export function attestationsRepo(ctx: Ctx) {
  /** Newest first; `before` (epoch ms, exclusive) pages back in time, `after` continues after the entry with that time and id. */
  async function listForHost(hostName: string, o: { limit?: number; before?: number; after?: [number, string] } = {}): Promise<Attestation[]> {
    let q = ctx.db.selectFrom("attestations").selectAll().where("host_name", "=", hostName);
    if (o.before !== undefined) q = q.where("at", "<", o.before);
    if (o.after) {
      const [at, id] = o.after;
      q = q.where((eb) => eb.or([eb("at", "<", at), eb.and([eb("at", "=", at), eb("id", "<", id)])]));
    }
    return (await q.orderBy("at", "desc").orderBy("id", "desc").limit(o.limit ?? 100).execute()).map(toAttestation);
  }

  return {
    listForHost,
    async record(a: NewAttestation | AttestationsTable): Promise<Attestation> {
      const row = "host_name" in a ? a : attestationRow(a);
      await insertOrConflict(insertAttestation(ctx, row), "attestation id collision", `host ${row.host_name} not found`);
      return toAttestation(row);
    },
    async get(id: string): Promise<Attestation | undefined> {
      const r = await ctx.db.selectFrom("attestations").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toAttestation(r) : undefined;
    },
    async latestForHost(hostName: string): Promise<Attestation | undefined> {
      return (await listForHost(hostName, { limit: 1 }))[0];
    },
  };
}
