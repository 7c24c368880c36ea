import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { type Ctx, fromJson, toJson } from "../ctx.js";
import { prepared } from "../prepared.js";
import type { Database, PoliciesTable } from "../schema.js";
import type { PolicyVersion } from "./hosts.js";

/** "baseline" | "software" | "ci" (code integrity) | "secureboot" | … */
export type PolicyKind = string;

export interface Policy<D = unknown> {
  id: string;
  kind: PolicyKind;
  name: string;
  /** 1, 2, … per (kind, name); every put makes a new version, old ones stay for the record */
  version: number;
  /** null = applies to every hardware class */
  hardwareClass: string | null;
  /** HGS policy version of the hosts it may judge: a host attests only if all its policies share its version */
  policyVersion: PolicyVersion;
  document: D;
  createdAt: number;
  createdBy: string | null;
  disabledAt: number | null;
}

const toPolicy = <D>(r: PoliciesTable): Policy<D> => ({
  id: r.id,
  kind: r.kind,
  name: r.name,
  version: r.version,
  hardwareClass: r.hardware_class,
  policyVersion: r.policy_version as PolicyVersion,
  document: fromJson<D>(r.document),
  createdAt: r.created_at,
  createdBy: r.created_by,
  disabledAt: r.disabled_at,
});

/** A policy version without its document. */
export type PolicyHead = Omit<Policy, "document">;

interface ListOptions {
  kind?: PolicyKind;
  hardwareClass?: string;
  allVersions?: boolean;
  includeDisabled?: boolean;
}

function listQuery(db: Kysely<Database>, o: ListOptions) {
  let q = db.selectFrom("policies as p");
  if (o.kind !== undefined) q = q.where("p.kind", "=", o.kind);
  if (o.hardwareClass !== undefined) q = q.where((eb) => eb.or([eb("p.hardware_class", "=", o.hardwareClass!), eb("p.hardware_class", "is", null)]));
  if (!o.includeDisabled) q = q.where("p.disabled_at", "is", null);
  if (!o.allVersions) {
    q = q.where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("policies as n")
            .select("n.id")
            .whereRef("n.kind", "=", "p.kind")
            .whereRef("n.name", "=", "p.name")
            .whereRef("n.version", ">", "p.version"),
        ),
      ),
    );
  }
  return q.orderBy("p.kind").orderBy("p.name").orderBy("p.version");
}

const HEAD_COLUMNS = ["p.id", "p.kind", "p.name", "p.version", "p.hardware_class", "p.created_at", "p.created_by", "p.disabled_at", "p.policy_version"] as const;
// every attestation lists the policies of its host's class
const headsForClass = prepared(({ db }, hardwareClass: string) => listQuery(db, { hardwareClass }).select(HEAD_COLUMNS));

/** Bumps the policy version, in the change's transaction. */
async function bump(ctx: Ctx): Promise<void> {
  await ctx.db.updateTable("policies_version").set((eb) => ({ version: eb("version", "+", 1) })).where("id", "=", 1).execute();
}

/** Versioned JSON policy documents (baselines, accepted software, code integrity …). */
export function policiesRepo(ctx: Ctx) {
  return {
    /** Stores a new version of (kind, name); versions never collide, even across instances. */
    put: <D>(o: { kind: PolicyKind; name: string; document: D; hardwareClass?: string | null; policyVersion?: PolicyVersion; createdBy?: string | null; at: number }): Promise<Policy<D>> =>
      ctx.transaction(async (tx) => {
        await tx.lock(`policy:${o.kind}:${o.name}`);
        const last = await tx.db
          .selectFrom("policies")
          .select((eb) => eb.fn.max("version").as("v"))
          .where("kind", "=", o.kind)
          .where("name", "=", o.name)
          .executeTakeFirst();
        const row: PoliciesTable = {
          id: randomUUID(),
          kind: o.kind,
          name: o.name,
          version: Number(last?.v ?? 0) + 1,
          hardware_class: o.hardwareClass ?? null,
          document: toJson(o.document),
          created_at: o.at,
          created_by: o.createdBy ?? null,
          disabled_at: null,
          policy_version: o.policyVersion ?? "v2",
        };
        await tx.db.insertInto("policies").values(row).execute();
        await bump(tx);
        return toPolicy<D>(row);
      }),

    /** A given version, or the newest one when `version` is omitted. */
    async get<D = unknown>(kind: PolicyKind, name: string, version?: number): Promise<Policy<D> | undefined> {
      let q = ctx.db.selectFrom("policies").selectAll().where("kind", "=", kind).where("name", "=", name);
      q = version === undefined ? q.orderBy("version", "desc").limit(1) : q.where("version", "=", version);
      const r = await q.executeTakeFirst();
      return r ? toPolicy<D>(r) : undefined;
    },

    async getById<D = unknown>(id: string): Promise<Policy<D> | undefined> {
      const r = await ctx.db.selectFrom("policies").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toPolicy<D>(r) : undefined;
    },

    /**
     * Policies, newest version of each (kind, name) unless `allVersions`. `hardwareClass` matches
     * that class and the class-independent policies. Disabled ones only with `includeDisabled`.
     */
    async list<D = unknown>(o: ListOptions = {}): Promise<Policy<D>[]> {
      return (await listQuery(ctx.db, o).selectAll("p").execute()).map((r) => toPolicy<D>(r));
    },

    /** list() without the documents (a policy id names one immutable version: callers may keep documents by id). */
    async listHeads(o: ListOptions = {}): Promise<PolicyHead[]> {
      const plain = o.hardwareClass !== undefined && !o.kind && !o.allVersions && !o.includeDisabled;
      const rows = plain ? (await headsForClass(ctx, o.hardwareClass!)).rows : await listQuery(ctx.db, o).select(HEAD_COLUMNS).execute();
      return rows.map((r) => {
        const { document: _d, ...head } = toPolicy({ ...r, document: "null" });
        return head;
      });
    },

    /** Enables or disables every version of (kind, name); returns how many rows changed. */
    setEnabled: (kind: PolicyKind, name: string, enabled: boolean, at: number): Promise<number> =>
      ctx.transaction(async (tx) => {
        const r = await tx.db
          .updateTable("policies")
          .set({ disabled_at: enabled ? null : at })
          .where("kind", "=", kind)
          .where("name", "=", name)
          .executeTakeFirst();
        const n = Number(r.numUpdatedRows);
        if (n > 0) await bump(tx);
        return n;
      }),

    /** The policy version: changes whenever a policy is added, enabled or disabled, by any instance. */
    async version(): Promise<number> {
      const r = await ctx.db.selectFrom("policies_version").select("version").where("id", "=", 1).executeTakeFirst();
      return Number(r?.version ?? 0);
    },
  };
}
