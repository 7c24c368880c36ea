import { fromJson, toJson, type Ctx } from "../ctx.js";
import type { Migration } from "./index.js";

/**
 * Who may enrol and where certificate names come from (issue 12): enroller tokens carry the
 * requester's identity, and every stored template states its `subjectFrom` and `requesters`
 * explicitly (the defaults of this version: names from the attested host when attestation is
 * required, else from the request; attested hosts and admins may enrol, anonymous requesters not).
 */
export const enrolmentRequesters: Migration = {
  version: 6,
  name: "enroller token identities, template subject binding and requesters",
  async up(ctx: Ctx) {
    await ctx.db.schema.alterTable("admin_tokens").addColumn("identity", "text").execute();
    for (const row of await ctx.db.selectFrom("ca_templates").select(["name", "document"]).execute()) {
      const doc = fromJson<Record<string, unknown>>(row.document);
      const mode = (doc.keyAttestation as { mode?: string } | undefined)?.mode ?? "none";
      doc.subjectFrom ??= mode === "required" ? "host" : "request";
      doc.requesters ??= { hosts: true, hostClasses: [], hostTags: [], enrollers: [], admins: true, anonymous: false };
      await ctx.db.updateTable("ca_templates").set({ document: toJson(doc) }).where("name", "=", row.name).execute();
    }
  },
};
