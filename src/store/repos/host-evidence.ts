import { sql } from "kysely";
import type { Ctx } from "../ctx.js";
import { prepared } from "../prepared.js";

/** PCR values as stored: JSON {bank: {pcr: hex}}. */
export const pcrsJson = (pcrs: Record<string, Record<number, Buffer>>): string =>
  JSON.stringify(Object.fromEntries(Object.entries(pcrs).map(([bank, v]) => [bank, Object.fromEntries(Object.entries(v).map(([p, d]) => [p, d.toString("hex")]))])));

// every attestation whose log replayed puts its evidence: one upsert; a log named only by its
// SHA-256 keeps the stored bytes when they are that log, else the row keeps no log
const upsert = prepared(({ db }, hostName: string, at: number, pcrs: string, eventLog: string | null, sha: string | null) =>
  db
    .insertInto("host_evidence")
    .values({ host_name: hostName, at, pcrs, event_log: eventLog, event_log_sha256: sql<string | null>`case when cast(${eventLog} as text) is not null then cast(${sha} as text) end` })
    .onConflict((oc) =>
      oc.column("host_name").doUpdateSet((eb) => ({
        at: eb.ref("excluded.at"),
        pcrs: eb.ref("excluded.pcrs"),
        event_log: sql<string | null>`case when excluded.event_log is not null then excluded.event_log when host_evidence.event_log_sha256 = cast(${sha} as text) then host_evidence.event_log end`,
        event_log_sha256: sql<string | null>`case when excluded.event_log is not null or host_evidence.event_log_sha256 = cast(${sha} as text) then cast(${sha} as text) end`,
      })),
    ),
);

/** A host's last verified evidence: PCR values proven by its quote, and its event log. */
export interface HostEvidence {
  hostName: string;
  at: number;
  pcrs: Record<string, Record<number, Buffer>>;
  eventLog: Buffer | null;
}

export interface NewHostEvidence {
  hostName: string;
  at: number;
  pcrs: Record<string, Record<number, Buffer>>;
  eventLog?: Buffer;
  eventLogSha256?: Buffer;
}

export function hostEvidenceRepo(ctx: Ctx) {
  return {
    /** Replaces the host's evidence; a log named only by its SHA-256 keeps the stored bytes when they are that log. */
    async put(e: NewHostEvidence): Promise<void> {
      await upsert(ctx, e.hostName, e.at, pcrsJson(e.pcrs), e.eventLog ? e.eventLog.toString("base64") : null, e.eventLogSha256?.toString("hex") ?? null);
    },
    async get(hostName: string): Promise<HostEvidence | undefined> {
      const r = await ctx.db.selectFrom("host_evidence").selectAll().where("host_name", "=", hostName).executeTakeFirst();
      if (!r) return undefined;
      const raw = JSON.parse(r.pcrs) as Record<string, Record<string, string>>;
      const pcrs = Object.fromEntries(Object.entries(raw).map(([bank, v]) => [bank, Object.fromEntries(Object.entries(v).map(([p, d]) => [Number(p), Buffer.from(d, "hex")]))]));
      return { hostName: r.host_name, at: Number(r.at), pcrs, eventLog: r.event_log === null ? null : Buffer.from(r.event_log, "base64") };
    },
  };
}
