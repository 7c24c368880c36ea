import { randomUUID } from "node:crypto";
import { TpmTrustError } from "../../errors.js";
import { type Ctx, affected, fromJson, fromJsonOrNull, hex, hexOrNull, insertOrConflict, notFound, toJson, unhex, unhexOrNull } from "../ctx.js";
import type { DeviceRegistrationsTable, EnrollmentGroupsTable, EnrollmentsTable } from "../schema.js";

/** DPS reprovisioning policies. */
export type ReprovisionPolicy = "reprovision-and-migrate" | "reprovision-and-reset" | "never";

export interface Enrollment {
  registrationId: string;
  /** TPMT_PUBLIC of the EK */
  ekPublic: Buffer;
  deviceId: string | null;
  initialTwin: Record<string, unknown> | null;
  /** allocation policy and hubs, e.g. { policy: "hashed", hubs: [...] } */
  allocation: Record<string, unknown>;
  reprovisionPolicy: ReprovisionPolicy;
  enabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface EnrollmentGroup {
  name: string;
  /** DER of the manufacturer CAs (trust anchors; at least one) the EK certificates must chain to */
  caCerts: Buffer[];
  /** DER of intermediate CAs that complete paths to the anchors */
  intermediates: Buffer[];
  initialTwin: Record<string, unknown> | null;
  allocation: Record<string, unknown>;
  reprovisionPolicy: ReprovisionPolicy;
  enabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface DeviceRegistration {
  registrationId: string;
  /** enrollment group, null for an individual enrollment */
  groupName: string | null;
  ekPublic: Buffer;
  srkPublic: Buffer | null;
  /** DPS status: "unassigned" | "assigning" | "assigned" | "failed" | "disabled" */
  status: string;
  substatus: string | null;
  assignedHub: string | null;
  deviceId: string | null;
  operationId: string | null;
  etag: string;
  payload: unknown;
  /** the HMAC key the device signs its SAS tokens with (duplicated into its TPM), as the caller stored it */
  sasKey: Buffer | null;
  /** the device twin ({tags, properties: {desired}}) for the assigned hub */
  twin: Record<string, unknown> | null;
  /** DPS error code and message when status is "failed" */
  errorCode: number | null;
  errorMessage: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface Hub {
  name: string;
  hostname: string;
  weight: number;
  createdAt: number;
}

type EnrollmentFields = Omit<Enrollment, "createdAt" | "updatedAt">;
type GroupFields = Omit<EnrollmentGroup, "createdAt" | "updatedAt">;
export type RegistrationPatch = Partial<
  Pick<DeviceRegistration, "groupName" | "ekPublic" | "srkPublic" | "status" | "substatus" | "assignedHub" | "deviceId" | "operationId" | "payload" | "sasKey" | "twin" | "errorCode" | "errorMessage">
>;

const toEnrollment = (r: EnrollmentsTable): Enrollment => ({
  registrationId: r.registration_id,
  ekPublic: unhex(r.ek_public),
  deviceId: r.device_id,
  initialTwin: fromJsonOrNull<Record<string, unknown>>(r.initial_twin),
  allocation: fromJson<Record<string, unknown>>(r.allocation),
  reprovisionPolicy: r.reprovision_policy as ReprovisionPolicy,
  enabled: r.enabled === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const toGroup = (r: EnrollmentGroupsTable): EnrollmentGroup => ({
  name: r.name,
  caCerts: [unhex(r.ca_cert), ...fromJson<string[]>(r.extra_ca_certs).map(unhex)],
  intermediates: fromJson<string[]>(r.intermediate_certs).map(unhex),
  initialTwin: fromJsonOrNull<Record<string, unknown>>(r.initial_twin),
  allocation: fromJson<Record<string, unknown>>(r.allocation),
  reprovisionPolicy: r.reprovision_policy as ReprovisionPolicy,
  enabled: r.enabled === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const toRegistration = (r: DeviceRegistrationsTable): DeviceRegistration => ({
  registrationId: r.registration_id,
  groupName: r.group_name,
  ekPublic: unhex(r.ek_public),
  srkPublic: unhexOrNull(r.srk_public),
  status: r.status,
  substatus: r.substatus,
  assignedHub: r.assigned_hub,
  deviceId: r.device_id,
  operationId: r.operation_id,
  etag: r.etag,
  payload: fromJsonOrNull(r.payload),
  sasKey: unhexOrNull(r.sas_key),
  twin: fromJsonOrNull<Record<string, unknown>>(r.twin),
  errorCode: r.error_code,
  errorMessage: r.error_message,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const twin = (t: Record<string, unknown> | null) => (t === null ? null : toJson(t));

/** DPS-style provisioning: enrollments, enrollment groups, linked hubs, device registration records. */
export function provisioningRepo(ctx: Ctx) {
  const getIdScope = async (): Promise<string | undefined> =>
    (await ctx.db.selectFrom("provisioning_settings").select("id_scope").where("id", "=", 1).executeTakeFirst())?.id_scope;
  return {
    /** Creates or replaces an individual enrollment. */
    async putEnrollment(e: EnrollmentFields, at: number): Promise<Enrollment> {
      const fields = {
        ek_public: hex(e.ekPublic),
        device_id: e.deviceId,
        initial_twin: twin(e.initialTwin),
        allocation: toJson(e.allocation),
        reprovision_policy: e.reprovisionPolicy,
        enabled: e.enabled ? 1 : 0,
        updated_at: at,
      };
      const r = await ctx.db
        .insertInto("enrollments")
        .values({ registration_id: e.registrationId, ...fields, created_at: at })
        .onConflict((oc) => oc.column("registration_id").doUpdateSet(fields))
        .returningAll()
        .executeTakeFirstOrThrow();
      return toEnrollment(r);
    },
    async getEnrollment(registrationId: string): Promise<Enrollment | undefined> {
      const r = await ctx.db.selectFrom("enrollments").selectAll().where("registration_id", "=", registrationId).executeTakeFirst();
      return r ? toEnrollment(r) : undefined;
    },
    async listEnrollments(o: { limit?: number; offset?: number } = {}): Promise<Enrollment[]> {
      return (await ctx.db.selectFrom("enrollments").selectAll().orderBy("registration_id").limit(o.limit ?? 1000).offset(o.offset ?? 0).execute()).map(toEnrollment);
    },
    async removeEnrollment(registrationId: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("enrollments").where("registration_id", "=", registrationId).executeTakeFirst()) > 0;
    },

    /** Creates or replaces an enrollment group. */
    async putGroup(g: GroupFields, at: number): Promise<EnrollmentGroup> {
      if (g.caCerts.length === 0) throw new TpmTrustError("ERR_VALIDATION", `enrollment group ${g.name} needs at least one CA certificate`);
      const fields = {
        ca_cert: hex(g.caCerts[0]),
        extra_ca_certs: toJson(g.caCerts.slice(1).map(hex)),
        intermediate_certs: toJson(g.intermediates.map(hex)),
        initial_twin: twin(g.initialTwin),
        allocation: toJson(g.allocation),
        reprovision_policy: g.reprovisionPolicy,
        enabled: g.enabled ? 1 : 0,
        updated_at: at,
      };
      const r = await ctx.db
        .insertInto("enrollment_groups")
        .values({ name: g.name, ...fields, created_at: at })
        .onConflict((oc) => oc.column("name").doUpdateSet(fields))
        .returningAll()
        .executeTakeFirstOrThrow();
      return toGroup(r);
    },
    async getGroup(name: string): Promise<EnrollmentGroup | undefined> {
      const r = await ctx.db.selectFrom("enrollment_groups").selectAll().where("name", "=", name).executeTakeFirst();
      return r ? toGroup(r) : undefined;
    },
    async listGroups(): Promise<EnrollmentGroup[]> {
      return (await ctx.db.selectFrom("enrollment_groups").selectAll().orderBy("name").execute()).map(toGroup);
    },
    async removeGroup(name: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("enrollment_groups").where("name", "=", name).executeTakeFirst()) > 0;
    },

    async putHub(h: { name: string; hostname: string; weight: number; at: number }): Promise<Hub> {
      const r = await ctx.db
        .insertInto("hubs")
        .values({ name: h.name, hostname: h.hostname, weight: h.weight, created_at: h.at })
        .onConflict((oc) => oc.column("name").doUpdateSet({ hostname: h.hostname, weight: h.weight }))
        .returningAll()
        .executeTakeFirstOrThrow();
      return { name: r.name, hostname: r.hostname, weight: r.weight, createdAt: r.created_at };
    },
    async getHub(name: string): Promise<Hub | undefined> {
      const r = await ctx.db.selectFrom("hubs").selectAll().where("name", "=", name).executeTakeFirst();
      return r ? { name: r.name, hostname: r.hostname, weight: r.weight, createdAt: r.created_at } : undefined;
    },
    async listHubs(): Promise<Hub[]> {
      return (await ctx.db.selectFrom("hubs").selectAll().orderBy("name").execute()).map((r) => ({ name: r.name, hostname: r.hostname, weight: r.weight, createdAt: r.created_at }));
    },
    async removeHub(name: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("hubs").where("name", "=", name).executeTakeFirst()) > 0;
    },

    /** Starts a registration record (status "unassigned"); ERR_CONFLICT if one exists. */
    async createRegistration(o: { registrationId: string; groupName?: string | null; ekPublic: Uint8Array; srkPublic?: Uint8Array | null; at: number }): Promise<DeviceRegistration> {
      const at = o.at;
      const row: DeviceRegistrationsTable = {
        registration_id: o.registrationId,
        group_name: o.groupName ?? null,
        ek_public: hex(o.ekPublic),
        srk_public: hexOrNull(o.srkPublic),
        status: "unassigned",
        substatus: null,
        assigned_hub: null,
        device_id: null,
        operation_id: null,
        etag: randomUUID(),
        payload: null,
        sas_key: null,
        // unused since challenge keys are derived (device-keys.ts), not stored
        pending_sas_key: null,
        twin: null,
        error_code: null,
        error_message: null,
        created_at: at,
        updated_at: at,
      };
      await insertOrConflict(ctx.db.insertInto("device_registrations").values(row).execute(), `registration ${o.registrationId} exists`);
      return toRegistration(row);
    },
    async getRegistration(registrationId: string): Promise<DeviceRegistration | undefined> {
      const r = await ctx.db.selectFrom("device_registrations").selectAll().where("registration_id", "=", registrationId).executeTakeFirst();
      return r ? toRegistration(r) : undefined;
    },
    async getRegistrationByOperation(operationId: string): Promise<DeviceRegistration | undefined> {
      const r = await ctx.db.selectFrom("device_registrations").selectAll().where("operation_id", "=", operationId).executeTakeFirst();
      return r ? toRegistration(r) : undefined;
    },
    /** Changes the given fields and draws a new etag; ERR_NOT_FOUND for an unknown id. */
    async updateRegistration(registrationId: string, p: RegistrationPatch, at: number): Promise<DeviceRegistration> {
      const set: Partial<DeviceRegistrationsTable> = { etag: randomUUID(), updated_at: at };
      if (p.groupName !== undefined) set.group_name = p.groupName;
      if (p.ekPublic !== undefined) set.ek_public = hex(p.ekPublic);
      if (p.srkPublic !== undefined) set.srk_public = hexOrNull(p.srkPublic);
      if (p.status !== undefined) set.status = p.status;
      if (p.substatus !== undefined) set.substatus = p.substatus;
      if (p.assignedHub !== undefined) set.assigned_hub = p.assignedHub;
      if (p.deviceId !== undefined) set.device_id = p.deviceId;
      if (p.operationId !== undefined) set.operation_id = p.operationId;
      if (p.payload !== undefined) set.payload = p.payload === null ? null : toJson(p.payload);
      if (p.sasKey !== undefined) set.sas_key = hexOrNull(p.sasKey);
      if (p.twin !== undefined) set.twin = p.twin === null ? null : toJson(p.twin);
      if (p.errorCode !== undefined) set.error_code = p.errorCode;
      if (p.errorMessage !== undefined) set.error_message = p.errorMessage;
      const r = await ctx.db.updateTable("device_registrations").set(set).where("registration_id", "=", registrationId).returningAll().executeTakeFirst();
      if (!r) throw notFound(`registration ${registrationId}`);
      return toRegistration(r);
    },
    async listRegistrations(o: { groupName?: string; limit?: number; offset?: number } = {}): Promise<DeviceRegistration[]> {
      let q = ctx.db.selectFrom("device_registrations").selectAll();
      if (o.groupName !== undefined) q = q.where("group_name", "=", o.groupName);
      return (await q.orderBy("registration_id").limit(o.limit ?? 1000).offset(o.offset ?? 0).execute()).map(toRegistration);
    },
    async removeRegistration(registrationId: string): Promise<boolean> {
      return affected(await ctx.db.deleteFrom("device_registrations").where("registration_id", "=", registrationId).executeTakeFirst()) > 0;
    },

    /** The service's DPS ID scope, or undefined before one was set. */
    getIdScope,
    /** Sets the ID scope (replacing any); `onlyIfUnset` keeps an existing one. Returns the scope in force. */
    async setIdScope(idScope: string, o: { onlyIfUnset?: boolean; at: number }): Promise<string> {
      const at = o.at;
      await ctx.db
        .insertInto("provisioning_settings")
        .values({ id: 1, id_scope: idScope, updated_at: at })
        .onConflict((oc) => (o.onlyIfUnset ? oc.column("id").doNothing() : oc.column("id").doUpdateSet({ id_scope: idScope, updated_at: at })))
        .execute();
      return (await getIdScope())!;
    },
  };
}
