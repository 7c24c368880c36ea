import { randomUUID } from "node:crypto";
import { type Ctx, affected, fromJson, fromJsonOrNull, hex, insertOrConflict, toJson, unhex } from "../ctx.js";
import type { CaAuthoritiesTable, CaCertsTable, CaCrlsTable } from "../schema.js";

export interface CaAuthority {
  id: string;
  /** "root" | "issuing" | "attestation" … */
  kind: string;
  cert: Buffer;
  /** where the private key lives (file path, key store reference) */
  keyRef: string;
  createdAt: number;
  retiredAt: number | null;
}

export interface CaTemplate<D = unknown> {
  name: string;
  document: D;
  createdAt: number;
  updatedAt: number;
}

export interface IssuedCert {
  /** lowercase hex serial number */
  serial: string;
  issuerId: string;
  templateName: string | null;
  hostName: string | null;
  subject: string;
  notBefore: number;
  notAfter: number;
  der: Buffer;
  /** trust models that passed and evidence facts */
  attestation: Record<string, unknown> | null;
  issuedAt: number;
  revokedAt: number | null;
  /** RFC 5280 CRLReason */
  revocationReason: number | null;
}

export interface Crl {
  issuerId: string;
  number: number;
  thisUpdate: number;
  nextUpdate: number;
  der: Buffer;
}

const toAuthority = (r: CaAuthoritiesTable): CaAuthority => ({ id: r.id, kind: r.kind, cert: unhex(r.cert), keyRef: r.key_ref, createdAt: r.created_at, retiredAt: r.retired_at });
const toCert = (r: CaCertsTable): IssuedCert => ({
  serial: r.serial,
  issuerId: r.issuer_id,
  templateName: r.template_name,
  hostName: r.host_name,
  subject: r.subject,
  notBefore: r.not_before,
  notAfter: r.not_after,
  der: unhex(r.cert),
  attestation: fromJsonOrNull<Record<string, unknown>>(r.attestation),
  issuedAt: r.issued_at,
  revokedAt: r.revoked_at,
  revocationReason: r.revocation_reason,
});
const toCrl = (r: CaCrlsTable): Crl => ({ issuerId: r.issuer_id, number: r.number, thisUpdate: r.this_update, nextUpdate: r.next_update, der: unhex(r.crl) });

/** The key attestation CA: its certificates, templates, issued certificates and CRLs. */
export function caRepo(ctx: Ctx) {
  return {
    async addAuthority(o: { kind: string; cert: Uint8Array; keyRef: string; at: number }): Promise<CaAuthority> {
      const row: CaAuthoritiesTable = { id: randomUUID(), kind: o.kind, cert: hex(o.cert), key_ref: o.keyRef, created_at: o.at, retired_at: null };
      await ctx.db.insertInto("ca_authorities").values(row).execute();
      return toAuthority(row);
    },
    /**
     * Adds an authority of `o.kind` unless one is current: of instances creating it at the same
     * moment, the first to commit wins and the others get its authority (`created` false).
     */
    addFirstAuthority: (o: { kind: string; cert: Uint8Array; keyRef: string; at: number }): Promise<{ authority: CaAuthority; created: boolean }> =>
      ctx.transaction(async (tx) => {
        await tx.lock(`ca-authority:${o.kind}`);
        const repo = caRepo(tx);
        const current = await repo.currentAuthority(o.kind);
        return current ? { authority: current, created: false } : { authority: await repo.addAuthority(o), created: true };
      }),
    async getAuthority(id: string): Promise<CaAuthority | undefined> {
      const r = await ctx.db.selectFrom("ca_authorities").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toAuthority(r) : undefined;
    },
    /** The newest unretired authority of a kind. */
    async currentAuthority(kind: string): Promise<CaAuthority | undefined> {
      const r = await ctx.db.selectFrom("ca_authorities").selectAll().where("kind", "=", kind).where("retired_at", "is", null).orderBy("created_at", "desc").orderBy("id").limit(1).executeTakeFirst();
      return r ? toAuthority(r) : undefined;
    },
    async retireAuthority(id: string, at: number): Promise<boolean> {
      return affected(await ctx.db.updateTable("ca_authorities").set({ retired_at: at }).where("id", "=", id).where("retired_at", "is", null).executeTakeFirst()) > 0;
    },

    /** Creates or replaces a template. */
    async putTemplate<D>(name: string, document: D, at: number): Promise<CaTemplate<D>> {
      const r = await ctx.db
        .insertInto("ca_templates")
        .values({ name, document: toJson(document), created_at: at, updated_at: at })
        .onConflict((oc) => oc.column("name").doUpdateSet({ document: toJson(document), updated_at: at }))
        .returningAll()
        .executeTakeFirstOrThrow();
      return { name: r.name, document: fromJson<D>(r.document), createdAt: r.created_at, updatedAt: r.updated_at };
    },
    async getTemplate<D = unknown>(name: string): Promise<CaTemplate<D> | undefined> {
      const r = await ctx.db.selectFrom("ca_templates").selectAll().where("name", "=", name).executeTakeFirst();
      return r ? { name: r.name, document: fromJson<D>(r.document), createdAt: r.created_at, updatedAt: r.updated_at } : undefined;
    },
    async listTemplates<D = unknown>(): Promise<CaTemplate<D>[]> {
      const rows = await ctx.db.selectFrom("ca_templates").selectAll().orderBy("name").execute();
      return rows.map((r) => ({ name: r.name, document: fromJson<D>(r.document), createdAt: r.created_at, updatedAt: r.updated_at }));
    },
    async removeTemplate(name: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("ca_templates").where("name", "=", name).executeTakeFirst()) > 0;
    },

    /** Stores an issued certificate. ERR_CONFLICT on a serial collision (the caller draws a new serial). */
    async recordCert(c: Omit<IssuedCert, "revokedAt" | "revocationReason" | "issuedAt"> & { issuedAt: number }): Promise<IssuedCert> {
      const row: CaCertsTable = {
        serial: c.serial.toLowerCase(),
        issuer_id: c.issuerId,
        template_name: c.templateName,
        host_name: c.hostName,
        subject: c.subject,
        not_before: c.notBefore,
        not_after: c.notAfter,
        cert: hex(c.der),
        attestation: c.attestation ? toJson(c.attestation) : null,
        issued_at: c.issuedAt,
        revoked_at: null,
        revocation_reason: null,
      };
      await insertOrConflict(ctx.db.insertInto("ca_certs").values(row).execute(), `serial ${row.serial} already used`, `CA ${c.issuerId} not found`);
      return toCert(row);
    },
    async getCert(serial: string): Promise<IssuedCert | undefined> {
      const r = await ctx.db.selectFrom("ca_certs").selectAll().where("serial", "=", serial.toLowerCase()).executeTakeFirst();
      return r ? toCert(r) : undefined;
    },
    /** Newest first. */
    async listCerts(o: { issuerId?: string; templateName?: string; hostName?: string; revoked?: boolean; limit?: number; offset?: number } = {}): Promise<IssuedCert[]> {
      let q = ctx.db.selectFrom("ca_certs").selectAll();
      if (o.issuerId !== undefined) q = q.where("issuer_id", "=", o.issuerId);
      if (o.templateName !== undefined) q = q.where("template_name", "=", o.templateName);
      if (o.hostName !== undefined) q = q.where("host_name", "=", o.hostName);
      if (o.revoked !== undefined) q = q.where("revoked_at", o.revoked ? "is not" : "is", null);
      return (await q.orderBy("issued_at", "desc").orderBy("serial").limit(o.limit ?? 1000).offset(o.offset ?? 0).execute()).map(toCert);
    },
    /** Revokes once; false if unknown or already revoked. */
    async revokeCert(serial: string, o: { reason: number; at: number }): Promise<boolean> {
      const r = await ctx.db
        .updateTable("ca_certs")
        .set({ revoked_at: o.at, revocation_reason: o.reason })
        .where("serial", "=", serial.toLowerCase())
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      return affected(r) > 0;
    },

    /**
     * Publishes a CRL built by `build(number, revoked)` under the next CRL number of the issuer
     * (RFC 5280 §5.2.3: monotonically increasing), serialised across instances. `revoked` is every
     * revoked certificate of the issuer, read under the lock: a revocation committed by the
     * previous publisher is never left out.
     */
    publishCrl: (issuerId: string, build: (number: number, revoked: IssuedCert[]) => Promise<{ thisUpdate: number; nextUpdate: number; der: Uint8Array }>): Promise<Crl> =>
      ctx.transaction(async (tx) => {
        await tx.lock(`crl:${issuerId}`);
        const last = await tx.db.selectFrom("ca_crls").select((eb) => eb.fn.max("number").as("n")).where("issuer_id", "=", issuerId).executeTakeFirst();
        const number = Number(last?.n ?? 0) + 1;
        const c = await build(number, await caRepo(tx).listCerts({ issuerId, revoked: true, limit: 1_000_000 }));
        const row: CaCrlsTable = { issuer_id: issuerId, number, this_update: c.thisUpdate, next_update: c.nextUpdate, crl: hex(c.der) };
        await insertOrConflict(tx.db.insertInto("ca_crls").values(row).execute(), `CRL ${number} exists`, `CA ${issuerId} not found`);
        return toCrl(row);
      }),
    async latestCrl(issuerId: string): Promise<Crl | undefined> {
      const r = await ctx.db.selectFrom("ca_crls").selectAll().where("issuer_id", "=", issuerId).orderBy("number", "desc").limit(1).executeTakeFirst();
      return r ? toCrl(r) : undefined;
    },
  };
}
