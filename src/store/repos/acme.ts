import { randomUUID } from "node:crypto";
import { type Ctx, affected, fromJson, fromJsonOrNull, insertOrConflict, toJson } from "../ctx.js";
import type { AcmeAccountsTable, AcmeAuthzsTable, AcmeOrdersTable } from "../schema.js";

export interface AcmeIdentifier {
  type: string;
  value: string;
}

export interface AcmeAccount {
  id: string;
  thumbprint: string;
  jwk: Record<string, unknown>;
  status: string;
  contact: string[];
  createdAt: number;
}

export interface AcmeOrder {
  id: string;
  accountId: string;
  template: string;
  status: string;
  identifiers: AcmeIdentifier[];
  expiresAt: number;
  certSerial: string | null;
  error: Record<string, unknown> | null;
  createdAt: number;
}

export interface AcmeAuthz {
  id: string;
  orderId: string;
  identifier: AcmeIdentifier;
  status: string;
  token: string;
  challengeStatus: string;
  validatedAt: number | null;
  error: Record<string, unknown> | null;
  attestation: Record<string, unknown> | null;
  expiresAt: number;
}

const toAccount = (r: AcmeAccountsTable): AcmeAccount => ({ id: r.id, thumbprint: r.thumbprint, jwk: fromJson(r.jwk), status: r.status, contact: fromJson(r.contact), createdAt: r.created_at });
const toOrder = (r: AcmeOrdersTable): AcmeOrder => ({
  id: r.id,
  accountId: r.account_id,
  template: r.template,
  status: r.status,
  identifiers: fromJson(r.identifiers),
  expiresAt: r.expires_at,
  certSerial: r.cert_serial,
  error: fromJsonOrNull(r.error),
  createdAt: r.created_at,
});
const toAuthz = (r: AcmeAuthzsTable): AcmeAuthz => ({
  id: r.id,
  orderId: r.order_id,
  identifier: fromJson(r.identifier),
  status: r.status,
  token: r.token,
  challengeStatus: r.challenge_status,
  validatedAt: r.validated_at,
  error: fromJsonOrNull(r.error),
  attestation: fromJsonOrNull(r.attestation),
  expiresAt: r.expires_at,
});

/** ACME accounts, orders and authorizations (RFC 8555 §7.1). State changes are conditional updates, so concurrent requests on any instance settle once. */
export function acmeRepo(ctx: Ctx) {
  return {
    /** ERR_CONFLICT if an account with this key exists. */
    async addAccount(o: { thumbprint: string; jwk: Record<string, unknown>; contact: string[]; at: number }): Promise<AcmeAccount> {
      const row: AcmeAccountsTable = { id: randomUUID(), thumbprint: o.thumbprint, jwk: toJson(o.jwk), status: "valid", contact: toJson(o.contact), created_at: o.at };
      await insertOrConflict(ctx.db.insertInto("acme_accounts").values(row).execute(), "an account with this key exists");
      return toAccount(row);
    },
    async getAccount(id: string): Promise<AcmeAccount | undefined> {
      const r = await ctx.db.selectFrom("acme_accounts").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toAccount(r) : undefined;
    },
    async accountByThumbprint(thumbprint: string): Promise<AcmeAccount | undefined> {
      const r = await ctx.db.selectFrom("acme_accounts").selectAll().where("thumbprint", "=", thumbprint).executeTakeFirst();
      return r ? toAccount(r) : undefined;
    },
    async updateAccount(id: string, p: { status?: string; contact?: string[] }): Promise<void> {
      await ctx.db
        .updateTable("acme_accounts")
        .set({ ...(p.status ? { status: p.status } : {}), ...(p.contact ? { contact: toJson(p.contact) } : {}) })
        .where("id", "=", id)
        .execute();
    },

    /** An order with one authorization per identifier, in one transaction. */
    createOrder: (o: { accountId: string; template: string; identifiers: AcmeIdentifier[]; expiresAt: number; tokens: string[]; at: number }): Promise<{ order: AcmeOrder; authzs: AcmeAuthz[] }> =>
      ctx.transaction(async (tx) => {
        const at = o.at;
        const order: AcmeOrdersTable = {
          id: randomUUID(),
          account_id: o.accountId,
          template: o.template,
          status: "pending",
          identifiers: toJson(o.identifiers),
          expires_at: o.expiresAt,
          cert_serial: null,
          error: null,
          created_at: at,
        };
        await insertOrConflict(tx.db.insertInto("acme_orders").values(order).execute(), `order ${order.id} exists`, `account ${o.accountId} not found`);
        const authzs: AcmeAuthzsTable[] = o.identifiers.map((id, i) => ({
          id: randomUUID(),
          order_id: order.id,
          identifier: toJson(id),
          status: "pending",
          token: o.tokens[i],
          challenge_status: "pending",
          validated_at: null,
          error: null,
          attestation: null,
          expires_at: o.expiresAt,
        }));
        if (authzs.length) await tx.db.insertInto("acme_authzs").values(authzs).execute();
        return { order: toOrder(order), authzs: authzs.map(toAuthz) };
      }),
    async getOrder(id: string): Promise<AcmeOrder | undefined> {
      const r = await ctx.db.selectFrom("acme_orders").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toOrder(r) : undefined;
    },
    async ordersOf(accountId: string): Promise<AcmeOrder[]> {
      return (await ctx.db.selectFrom("acme_orders").selectAll().where("account_id", "=", accountId).orderBy("created_at").orderBy("id").execute()).map(toOrder);
    },
    async authzsOf(orderId: string): Promise<AcmeAuthz[]> {
      return (await ctx.db.selectFrom("acme_authzs").selectAll().where("order_id", "=", orderId).orderBy("id").execute()).map(toAuthz);
    },
    async getAuthz(id: string): Promise<AcmeAuthz | undefined> {
      const r = await ctx.db.selectFrom("acme_authzs").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toAuthz(r) : undefined;
    },
    /** Settles a pending challenge and its authorization; false if it was no longer pending. */
    async settleAuthz(id: string, o: { valid: boolean; at: number; error?: Record<string, unknown> | null; attestation?: Record<string, unknown> | null }): Promise<boolean> {
      const r = await ctx.db
        .updateTable("acme_authzs")
        .set({
          status: o.valid ? "valid" : "invalid",
          challenge_status: o.valid ? "valid" : "invalid",
          validated_at: o.valid ? o.at : null,
          error: o.error ? toJson(o.error) : null,
          attestation: o.attestation ? toJson(o.attestation) : null,
        })
        .where("id", "=", id)
        .where("challenge_status", "=", "pending")
        .executeTakeFirst();
      return affected(r) > 0;
    },
    /** Moves an order from status `from` to `to` (with its certificate or error); false if it was not in `from`. */
    async moveOrder(id: string, from: string, to: { status: string; certSerial?: string; error?: Record<string, unknown> }): Promise<boolean> {
      const r = await ctx.db
        .updateTable("acme_orders")
        .set({ status: to.status, ...(to.certSerial ? { cert_serial: to.certSerial } : {}), ...(to.error ? { error: toJson(to.error) } : {}) })
        .where("id", "=", id)
        .where("status", "=", from)
        .executeTakeFirst();
      return affected(r) > 0;
    },
  };
}
