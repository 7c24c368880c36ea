import { sql } from "kysely";
import { type Ctx, affected, forUpdate, fromJson, fromJsonOrNull, hex, hexOrNull, insertOrConflict, notFound, toJson, unhex, unhexOrNull } from "../ctx.js";
import { prepared } from "../prepared.js";
import type { HostEksTable, HostsTable } from "../schema.js";

export type Health = "unknown" | "healthy" | "unhealthy";
/** HGS policy versions: v2 requires a trusted EK certificate, v1 accepts an allow-listed EK without one. */
export type PolicyVersion = "v1" | "v2";

// An attestation that leaves the host's health as it was: one conditional UPDATE.
const attestedUnchanged = prepared(({ db }, name: string, health: string, reason: string | null, at: number, deadlineAt: number) =>
  db.updateTable("hosts").set({ health_reason: reason, updated_at: at, last_attestation_at: at, deadline_at: deadlineAt }).where("name", "=", name).where("health", "=", health),
);

export interface HostEk {
  /** Name of the EK: nameAlg ‖ H(TPMT_PUBLIC) */
  name: Buffer;
  /** TPMT_PUBLIC bytes */
  public: Buffer;
  /** DER EK certificate, if the TPM has one */
  cert: Buffer | null;
}

export interface Host {
  name: string;
  hardwareClass: string;
  policyVersion: PolicyVersion;
  /** how the EK was trusted, e.g. "ek-cert", "ek-allowlist" */
  trustMethod: string | null;
  health: Health;
  healthReason: string | null;
  healthChangedAt: number | null;
  lastAttestationAt: number | null;
  /** the host counts as silent (unhealthy) after this time unless it attests again */
  deadlineAt: number | null;
  tags: string[];
  /** TPM manufacturer, model, firmware … as `agent identify` reported them */
  platform: Record<string, unknown> | null;
  eks: HostEk[];
  createdAt: number;
  updatedAt: number;
  /** when an administrator disabled the host (null: enabled) */
  disabledAt: number | null;
}

/** The orders a host list can be read in; a leading "-" reverses. Ties are broken by name. */
export const HOST_ORDERS = ["name", "-name", "lastAttestationAt", "-lastAttestationAt", "health", "-health", "hardwareClass", "-hardwareClass"] as const;
export type HostOrder = (typeof HOST_ORDERS)[number];

export interface HostFilter {
  health?: Health;
  hardwareClass?: string;
  /** a substring of the name or the hardware class */
  text?: string;
}

export interface NewHost {
  name: string;
  hardwareClass: string;
  policyVersion: PolicyVersion;
  eks: HostEk[];
  trustMethod?: string | null;
  tags?: string[];
  platform?: Record<string, unknown> | null;
  at: number;
}

/** What the trust sweep reads of a host before it knows whether the host must be judged. */
export type TrustCandidate = Pick<Host, "name" | "hardwareClass" | "policyVersion" | "health" | "createdAt" | "disabledAt">;

export type HostPatch = Partial<Pick<Host, "hardwareClass" | "policyVersion" | "trustMethod" | "tags" | "platform" | "lastAttestationAt" | "deadlineAt">>;

const toEk = (r: HostEksTable): HostEk => ({ name: unhex(r.ek_name), public: unhex(r.public), cert: unhexOrNull(r.cert) });

export function toHost(r: HostsTable, eks: HostEk[]): Host {
  return {
    name: r.name,
    hardwareClass: r.hardware_class,
    policyVersion: r.policy_version as PolicyVersion,
    trustMethod: r.trust_method,
    health: r.health as Health,
    healthReason: r.health_reason,
    healthChangedAt: r.health_changed_at,
    lastAttestationAt: r.last_attestation_at,
    deadlineAt: r.deadline_at,
    tags: fromJson<string[]>(r.tags),
    platform: fromJsonOrNull<Record<string, unknown>>(r.platform),
    eks,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    disabledAt: r.disabled_at ?? null,
  };
}

export function hostsRepo(ctx: Ctx) {
  async function eksOf(names: readonly string[]): Promise<Map<string, HostEk[]>> {
    const by = new Map<string, HostEk[]>();
    // in slices: SQLite binds at most 32,766 parameters to one statement
    for (let i = 0; i < names.length; i += 1000) {
      const eks = await ctx.db.selectFrom("host_eks").selectAll().where("host_name", "in", names.slice(i, i + 1000)).orderBy("ek_name").execute();
      for (const e of eks) by.set(e.host_name, [...(by.get(e.host_name) ?? []), toEk(e)]);
    }
    return by;
  }

  async function withEks(rows: HostsTable[]): Promise<Host[]> {
    const by = await eksOf(rows.map((r) => r.name));
    return rows.map((r) => toHost(r, by.get(r.name) ?? []));
  }

  async function get(name: string): Promise<Host | undefined> {
    const row = await ctx.db.selectFrom("hosts").selectAll().where("name", "=", name).executeTakeFirst();
    return row ? (await withEks([row]))[0] : undefined;
  }

  function filtered(o: HostFilter) {
    let q = ctx.db.selectFrom("hosts");
    if (o.health) q = q.where("health", "=", o.health);
    if (o.hardwareClass) q = q.where("hardware_class", "=", o.hardwareClass);
    if (o.text) {
      const like = `%${o.text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      q = q.where(sql<boolean>`(lower(name) like ${like.toLowerCase()} escape '\\' or lower(hardware_class) like ${like.toLowerCase()} escape '\\')`);
    }
    return q;
  }

  return {
    get,

    /** Adds a host with its EKs in one transaction. ERR_CONFLICT if the name or an EK is taken. */
    add: (h: NewHost): Promise<Host> =>
      ctx.transaction(async (tx) => {
        const at = h.at;
        await insertOrConflict(
          tx.db
            .insertInto("hosts")
            .values({
              name: h.name,
              hardware_class: h.hardwareClass,
              policy_version: h.policyVersion,
              trust_method: h.trustMethod ?? null,
              health: "unknown",
              health_reason: null,
              health_changed_at: null,
              last_attestation_at: null,
              deadline_at: null,
              tags: toJson(h.tags ?? []),
              platform: h.platform ? toJson(h.platform) : null,
              created_at: at,
              updated_at: at,
              disabled_at: null,
            })
            .execute(),
          `host ${h.name} already exists`,
        );
        for (const ek of h.eks) {
          await insertOrConflict(
            tx.db.insertInto("host_eks").values({ ek_name: hex(ek.name), host_name: h.name, public: hex(ek.public), cert: hexOrNull(ek.cert) }).execute(),
            `EK ${hex(ek.name)} is already registered to a host`,
          );
        }
        return (await hostsRepo(tx).get(h.name))!;
      }),

    /** The host that owns the EK with this Name. */
    async findByEk(ekName: Uint8Array): Promise<Host | undefined> {
      const r = await ctx.db.selectFrom("host_eks").select("host_name").where("ek_name", "=", hex(ekName)).executeTakeFirst();
      return r ? get(r.host_name) : undefined;
    },

    async list(o: { health?: Health; hardwareClass?: string; limit?: number; offset?: number } = {}): Promise<Host[]> {
      let q = ctx.db.selectFrom("hosts").selectAll().orderBy("name");
      if (o.health) q = q.where("health", "=", o.health);
      if (o.hardwareClass) q = q.where("hardware_class", "=", o.hardwareClass);
      if (o.limit !== undefined) q = q.limit(o.limit).offset(o.offset ?? 0);
      return withEks(await q.execute());
    },

    /**
     * One page of hosts in `order`, after the host whose sort key and name are `after` (keyset
     * paging: each page is an index range, however deep), and whether more follow.
     */
    async page(o: HostFilter & { order: HostOrder; after?: [string | number | null, string]; limit: number }): Promise<{ hosts: Host[]; more: boolean }> {
      const desc = o.order.startsWith("-");
      const dir = desc ? "desc" : "asc";
      const field = o.order.replace(/^-/, "");
      // a never-attested host sorts as time -1, before every attested one
      const key =
        field === "lastAttestationAt" ? sql<number>`coalesce(last_attestation_at, -1)` : field === "health" ? sql<string>`health` : field === "hardwareClass" ? sql<string>`hardware_class` : undefined;
      let q = filtered(o).selectAll();
      if (o.after) {
        const [v, name] = o.after;
        const cmp = desc ? sql.raw("<") : sql.raw(">");
        q = key ? q.where(sql<boolean>`(${key} ${cmp} ${v} or (${key} = ${v} and name ${cmp} ${name}))`) : q.where(sql<boolean>`name ${cmp} ${name}`);
      }
      if (key) q = q.orderBy(key, dir);
      const rows = await q.orderBy("name", dir).limit(o.limit + 1).execute();
      return { hosts: await withEks(rows.slice(0, o.limit)), more: rows.length > o.limit };
    },

    async count(o: HostFilter = {}): Promise<number> {
      const r = await filtered(o).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
      return Number(r.n);
    },

    /** The most common reasons hosts are unhealthy, with a few of the hosts for each. */
    async unhealthyReasons(top: number, examples: number): Promise<{ reason: string | null; count: number; examples: string[] }[]> {
      const rows = await ctx.db
        .selectFrom("hosts")
        .select((eb) => ["health_reason", eb.fn.countAll<number>().as("n")])
        .where("health", "=", "unhealthy")
        .groupBy("health_reason")
        .orderBy("n", "desc")
        .orderBy("health_reason")
        .limit(top)
        .execute();
      return Promise.all(
        rows.map(async (r) => {
          let q = ctx.db.selectFrom("hosts").select("name").where("health", "=", "unhealthy");
          q = r.health_reason === null ? q.where("health_reason", "is", null) : q.where("health_reason", "=", r.health_reason);
          const names = await q.orderBy("name").limit(examples).execute();
          return { reason: r.health_reason, count: Number(r.n), examples: names.map((x) => x.name) };
        }),
      );
    },

    async countByHealth(): Promise<Record<Health, number>> {
      const rows = await ctx.db
        .selectFrom("hosts")
        .select((eb) => ["health", eb.fn.countAll<number>().as("n")])
        .groupBy("health")
        .execute();
      const out: Record<Health, number> = { unknown: 0, healthy: 0, unhealthy: 0 };
      for (const r of rows) out[r.health as Health] = Number(r.n);
      return out;
    },

    /** Changes the given fields; ERR_NOT_FOUND for an unknown host. */
    async update(name: string, p: HostPatch, at: number): Promise<Host> {
      const set: Partial<HostsTable> = { updated_at: at };
      if (p.hardwareClass !== undefined) set.hardware_class = p.hardwareClass;
      if (p.policyVersion !== undefined) set.policy_version = p.policyVersion;
      if (p.trustMethod !== undefined) set.trust_method = p.trustMethod;
      if (p.tags !== undefined) set.tags = toJson(p.tags);
      if (p.platform !== undefined) set.platform = p.platform === null ? null : toJson(p.platform);
      if (p.lastAttestationAt !== undefined) set.last_attestation_at = p.lastAttestationAt;
      if (p.deadlineAt !== undefined) set.deadline_at = p.deadlineAt;
      if (affected(await ctx.db.updateTable("hosts").set(set).where("name", "=", name).executeTakeFirst()) === 0) throw notFound(`host ${name}`);
      return (await get(name))!;
    },

    /**
     * Sets the health state. `changed` is true for exactly one caller per transition, even with
     * several instances (row lock), so health-change notifications go out once.
     */
    setHealth: (name: string, o: { health: Health; reason?: string | null; at: number }): Promise<{ changed: boolean; previous: Health; host: Host }> =>
      ctx.transaction(async (tx) => {
        const at = o.at;
        const cur = await forUpdate(tx, tx.db.selectFrom("hosts").select("health").where("name", "=", name)).executeTakeFirst();
        if (!cur) throw notFound(`host ${name}`);
        const previous = cur.health as Health;
        const changed = previous !== o.health;
        await tx.db
          .updateTable("hosts")
          .set({ health: o.health, health_reason: o.reason ?? null, updated_at: at, ...(changed ? { health_changed_at: at } : {}) })
          .where("name", "=", name)
          .execute();
        return { changed, previous, host: (await hostsRepo(tx).get(name))! };
      }),

    /**
     * Records an attestation outcome: health and its reason, the attestation time and the next
     * deadline. `changed` is true for exactly one caller per transition (row lock).
     */
    attested: (name: string, o: { health: Health; reason?: string | null; at: number; deadlineAt: number }): Promise<{ changed: boolean; previous: Health }> =>
      ctx.transaction(async (tx) => {
        if (Number((await attestedUnchanged(tx, name, o.health, o.reason ?? null, o.at, o.deadlineAt)).numAffectedRows) === 1) return { changed: false, previous: o.health };
        const cur = await forUpdate(tx, tx.db.selectFrom("hosts").select("health").where("name", "=", name)).executeTakeFirst();
        if (!cur) throw notFound(`host ${name}`);
        const changed = cur.health !== o.health;
        await tx.db
          .updateTable("hosts")
          .set({ health: o.health, health_reason: o.reason ?? null, updated_at: o.at, last_attestation_at: o.at, deadline_at: o.deadlineAt, ...(changed ? { health_changed_at: o.at } : {}) })
          .where("name", "=", name)
          .execute();
        return { changed, previous: cur.health as Health };
      }),

    /**
     * Marks a host unhealthy because it went silent, only if it is still past its deadline and still
     * in the health `seen`: one conditional UPDATE, so of several sweeping instances exactly one wins.
     */
    /** Disables (`at`) or enables (null) a host; false if there is no such host. */
    async setDisabled(name: string, disabledAt: number | null, at: number): Promise<boolean> {
      return affected(await ctx.db.updateTable("hosts").set({ disabled_at: disabledAt, updated_at: at }).where("name", "=", name).executeTakeFirst()) > 0;
    },

    /**
     * Turns a host unhealthy for `reason` unless it already is; true for exactly the one caller that
     * made the transition (several instances may find the same reason at once).
     */
    async markUnhealthy(name: string, o: { reason: string; at: number }): Promise<{ changed: boolean; previous: Health }> {
      const cur = await ctx.db.selectFrom("hosts").select("health").where("name", "=", name).executeTakeFirst();
      if (!cur || cur.health === "unhealthy") return { changed: false, previous: (cur?.health ?? "unhealthy") as Health };
      const r = await ctx.db
        .updateTable("hosts")
        .set({ health: "unhealthy", health_reason: o.reason, health_changed_at: o.at, updated_at: o.at })
        .where("name", "=", name)
        .where("health", "=", cur.health)
        .executeTakeFirst();
      return { changed: affected(r) > 0, previous: cur.health as Health };
    },

    async markSilent(name: string, o: { seen: Health; reason: string; at: number }): Promise<boolean> {
      const r = await ctx.db
        .updateTable("hosts")
        .set({ health: "unhealthy", health_reason: o.reason, health_changed_at: o.at, updated_at: o.at })
        .where("name", "=", name)
        .where("health", "=", o.seen)
        .where("health", "<>", "unhealthy")
        .where("deadline_at", "<", o.at)
        .executeTakeFirst();
      return affected(r) > 0;
    },

    /**
     * One page (by name, after `after`) of the hosts a trust change can turn unhealthy: enabled, not
     * yet unhealthy, with at least one EK. Without their EKs (eksOf loads those that must be judged).
     */
    async trustCandidates(o: { after?: string; limit: number }): Promise<TrustCandidate[]> {
      let q = ctx.db
        .selectFrom("hosts")
        .select(["name", "hardware_class", "policy_version", "health", "created_at", "disabled_at"])
        .where("health", "<>", "unhealthy")
        .where("disabled_at", "is", null)
        .where((eb) => eb.exists(eb.selectFrom("host_eks").select("ek_name").whereRef("host_eks.host_name", "=", "hosts.name")));
      if (o.after !== undefined) q = q.where("name", ">", o.after);
      const rows = await q.orderBy("name").limit(o.limit).execute();
      return rows.map((r) => ({ name: r.name, hardwareClass: r.hardware_class, policyVersion: r.policy_version as PolicyVersion, health: r.health as Health, createdAt: r.created_at, disabledAt: r.disabled_at ?? null }));
    },

    /** The EKs of these hosts, by host name. */
    eksOf,

    /** Hosts not yet unhealthy whose attestation deadline has passed. */
    async listOverdue(at: number): Promise<Host[]> {
      return withEks(await ctx.db.selectFrom("hosts").selectAll().where("deadline_at", "<", at).where("health", "<>", "unhealthy").orderBy("name").execute());
    },

    /** Deletes the host and, by cascade, its EKs, AKs, activations, attestations and tokens. */
    async remove(name: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("hosts").where("name", "=", name).executeTakeFirst()) > 0;
    },
  };
}
