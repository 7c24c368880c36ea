import { type Ctx, affected, hex, hexOrNull, insertOrConflict, notFound, unhex, unhexOrNull } from "../ctx.js";
import { prepared } from "../prepared.js";
import type { AksTable } from "../schema.js";
import { toHost, type Host } from "./hosts.js";

export interface Ak {
  /** Name of the AK: nameAlg ‖ H(TPMT_PUBLIC) */
  name: Buffer;
  hostName: string;
  /** TPMT_PUBLIC bytes */
  public: Buffer;
  boundAt: number;
  /** DER AK certificate from the attestation CA */
  akCert: Buffer | null;
}

const toAk = (r: AksTable): Ak => ({ name: unhex(r.name), hostName: r.host_name, public: unhex(r.public), boundAt: r.bound_at, akCert: unhexOrNull(r.ak_cert) });

// every attestation looks its AK up, and with it the versions of what its judgement caches
const akWithHost = prepared(({ db }, name: string) =>
  db
    .selectFrom("aks")
    .innerJoin("hosts", "hosts.name", "aks.host_name")
    .selectAll("hosts")
    .select(["aks.name as ak_name", "aks.public as ak_public", "aks.bound_at as ak_bound_at", "aks.ak_cert as ak_cert"])
    .select((eb) => [
      eb.selectFrom("trust_version").select("version").where("id", "=", 1).as("trust_version"),
      eb.selectFrom("policies_version").select("version").where("id", "=", 1).as("policies_version"),
    ])
    .where("aks.name", "=", name),
);

/** The trust and policy versions (trustRepo.version, policiesRepo.version) read with an AK. */
export interface ConfigVersions {
  trust: number;
  policies: number;
}

/** Attestation keys bound to hosts (only after a successful credential activation). */
export function aksRepo(ctx: Ctx) {
  return {
    /** Binds an AK to a host. ERR_CONFLICT if the AK is already bound, ERR_NOT_FOUND for an unknown host. */
    async bind(o: { hostName: string; name: Uint8Array; public: Uint8Array; akCert?: Uint8Array | null; at: number }): Promise<Ak> {
      const row: AksTable = { name: hex(o.name), host_name: o.hostName, public: hex(o.public), bound_at: o.at, ak_cert: hexOrNull(o.akCert) };
      await insertOrConflict(ctx.db.insertInto("aks").values(row).execute(), `AK ${row.name} is already bound`, `host ${o.hostName} not found`);
      return toAk(row);
    },
    async get(name: Uint8Array): Promise<Ak | undefined> {
      const r = await ctx.db.selectFrom("aks").selectAll().where("name", "=", hex(name)).executeTakeFirst();
      return r ? toAk(r) : undefined;
    },
    /** The AK and its host (without the host's EKs) and the config versions in one query: what each attestation reads. */
    async getWithHost(name: Uint8Array): Promise<{ ak: Ak; host: Omit<Host, "eks">; versions: ConfigVersions } | undefined> {
      const [r] = (await akWithHost(ctx, hex(name))).rows;
      if (!r) return undefined;
      const { ak_name, ak_public, ak_bound_at, ak_cert, trust_version, policies_version, ...host } = r;
      const { eks: _eks, ...h } = toHost(host, []);
      return { ak: toAk({ name: ak_name, host_name: host.name, public: ak_public, bound_at: ak_bound_at, ak_cert }), host: h, versions: { trust: Number(trust_version ?? 0), policies: Number(policies_version ?? 0) } };
    },
    async listForHost(hostName: string): Promise<Ak[]> {
      return (await ctx.db.selectFrom("aks").selectAll().where("host_name", "=", hostName).orderBy("bound_at").orderBy("name").execute()).map(toAk);
    },
    /** The AKs of several hosts in one query, by host name. */
    async listForHosts(hostNames: string[]): Promise<Map<string, Ak[]>> {
      const by = new Map<string, Ak[]>();
      if (hostNames.length === 0) return by;
      const rows = await ctx.db.selectFrom("aks").selectAll().where("host_name", "in", hostNames).orderBy("bound_at").orderBy("name").execute();
      for (const r of rows) by.set(r.host_name, [...(by.get(r.host_name) ?? []), toAk(r)]);
      return by;
    },
    async setCert(name: Uint8Array, akCert: Uint8Array): Promise<void> {
      if (affected(await ctx.db.updateTable("aks").set({ ak_cert: hex(akCert) }).where("name", "=", hex(name)).executeTakeFirst()) === 0) throw notFound("AK");
    },
    async unbind(name: Uint8Array): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("aks").where("name", "=", hex(name)).executeTakeFirst()) > 0;
    },
  };
}
