import type { Ctx } from "../ctx.js";

/** A host's last verified evidence: PCR values proven by its quote, and its event log. */
export interface HostEvidence {
  hostName: string;
  at: number;
  pcrs: Record<string, Record<number, Buffer>>;
  eventLog: Buffer | null;
}

export function hostEvidenceRepo(ctx: Ctx) {
  return {
    /** Replaces the host's evidence; a log named only by its SHA-256 keeps the stored bytes when they are that log. */
    async put(e: { hostName: string; at: number; pcrs: Record<string, Record<number, Buffer>>; eventLog?: Buffer; eventLogSha256?: Buffer }): Promise<void> {
      const pcrs = JSON.stringify(Object.fromEntries(Object.entries(e.pcrs).map(([bank, v]) => [bank, Object.fromEntries(Object.entries(v).map(([p, d]) => [p, d.toString("hex")]))])));
      const sha = e.eventLogSha256?.toString("hex") ?? null;
      const prev = await ctx.db.selectFrom("host_evidence").select(["event_log", "event_log_sha256"]).where("host_name", "=", e.hostName).executeTakeFirst();
      const keep = !e.eventLog && sha !== null && prev?.event_log_sha256 === sha;
      const row = { at: e.at, pcrs, event_log: e.eventLog ? e.eventLog.toString("base64") : keep ? prev!.event_log : null, event_log_sha256: e.eventLog || keep ? sha : null };
      await ctx.db
        .insertInto("host_evidence")
        .values({ host_name: e.hostName, ...row })
        .onConflict((oc) => oc.column("host_name").doUpdateSet(row))
        .execute();
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
