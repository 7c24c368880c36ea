import { sql } from "kysely";
import type { Ctx } from "../ctx.js";
import { prepared } from "../prepared.js";

/** A host's incremental IMA verification in its current boot, as stored. */
export interface ImaStateRecord {
  hostName: string;
  resetCount: number;
  /** ids of the runtime policy versions judged by, comma-separated */
  policies: string;
  nextIndex: number;
  /** PCR 10 per bank after the verified entries */
  pcr10: Record<string, Buffer>;
  failures: number;
  /** the last failing entry, as the caller gave it */
  lastFailure: unknown;
  /** the caller's JSON; null when it is the `known` version's (read by `get`) */
  state: string | null;
  version: string;
  updatedAt: number;
}

const pcrJson = (p: Record<string, Buffer>) => JSON.stringify(Object.fromEntries(Object.entries(p).map(([b, v]) => [b, v.toString("hex")])));

// the state document only when it is not the version the caller holds already
const read = prepared(({ db }, hostName: string, known: string) =>
  db
    .selectFrom("ima_state")
    .select(["host_name", "reset_count", "policies", "next_index", "pcr10", "failures", "last_failure", "version", "updated_at"])
    .select(sql<string | null>`case when version = ${known} then null else state end`.as("state"))
    .where("host_name", "=", hostName),
);

// a write replaces the row only when it still is the version the writer read (none: no row yet)
const write = prepared(
  ({ db }, hostName: string, resetCount: number, policies: string, nextIndex: number, pcr10: string, failures: number, lastFailure: string | null, state: string, version: string, at: number, expected: string | null) =>
    db
      .insertInto("ima_state")
      .values({ host_name: hostName, reset_count: resetCount, policies, next_index: nextIndex, pcr10, failures, last_failure: lastFailure, state, version, updated_at: at })
      .onConflict((oc) =>
        oc
          .column("host_name")
          .doUpdateSet((eb) => ({
            reset_count: eb.ref("excluded.reset_count"),
            policies: eb.ref("excluded.policies"),
            next_index: eb.ref("excluded.next_index"),
            pcr10: eb.ref("excluded.pcr10"),
            failures: eb.ref("excluded.failures"),
            last_failure: eb.ref("excluded.last_failure"),
            state: eb.ref("excluded.state"),
            version: eb.ref("excluded.version"),
            updated_at: eb.ref("excluded.updated_at"),
          }))
          .where("ima_state.version", "=", sql<string>`cast(${expected} as text)`),
      )
      .returning("version"),
);

export function imaStateRepo(ctx: Ctx) {
  return {
    /** The host's state; its `state` document is null when the stored version is `known` (the caller's cached copy is current). */
    async get(hostName: string, known = ""): Promise<ImaStateRecord | undefined> {
      const r = (await read(ctx, hostName, known)).rows[0];
      if (!r) return undefined;
      const pcr10 = Object.fromEntries(Object.entries(JSON.parse(r.pcr10) as Record<string, string>).map(([b, v]) => [b, Buffer.from(v, "hex")]));
      return {
        hostName: r.host_name,
        resetCount: Number(r.reset_count),
        policies: r.policies,
        nextIndex: Number(r.next_index),
        pcr10,
        failures: Number(r.failures),
        lastFailure: r.last_failure === null ? null : JSON.parse(r.last_failure),
        state: r.state,
        version: r.version,
        updatedAt: Number(r.updated_at),
      };
    },
    /**
     * Stores `s` in place of the version `expected` (null: the host has no row yet). False, with
     * nothing written, when the stored row is not (or no longer) that version.
     */
    async put(s: Omit<ImaStateRecord, "state"> & { state: string }, expected: string | null): Promise<boolean> {
      const lastFailure = s.lastFailure === null || s.lastFailure === undefined ? null : JSON.stringify(s.lastFailure);
      const r = await write(ctx, s.hostName, s.resetCount, s.policies, s.nextIndex, pcrJson(s.pcr10), s.failures, lastFailure, s.state, s.version, s.updatedAt, expected);
      return r.rows.length === 1;
    },
  };
}
