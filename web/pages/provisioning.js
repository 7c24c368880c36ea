// Zero-touch provisioning (DPS-compatible): ID scope, linked hubs, enrollments, enrollment groups, device registrations.
import { api, badge, clear, h, has, notAvailable, section, short, table, timeCell } from "../lib.js";

export async function render(main) {
  if (!has("GET /v1/provisioning/enrollments")) return clear(main, h("h1", {}, "Provisioning"), notAvailable("Enrollments and device registrations"));
  const get = (op, path, empty) => (has(op) ? api("GET", path) : Promise.resolve(empty));
  const [settings, hubs, enrollments, groups, registrations] = await Promise.all([
    get("GET /v1/provisioning/settings", "/v1/provisioning/settings", null),
    get("GET /v1/provisioning/hubs", "/v1/provisioning/hubs", []),
    api("GET", "/v1/provisioning/enrollments"),
    get("GET /v1/provisioning/enrollment-groups", "/v1/provisioning/enrollment-groups", []),
    get("GET /v1/provisioning/registrations", "/v1/provisioning/registrations", []),
  ]);
  const enabled = (x) => (x.enabled === false ? badge("disabled", "fail") : badge("enabled", "pass"));
  clear(
    main,
    h("h1", {}, "Provisioning"),
    settings ? h("p", { class: "muted" }, "ID scope ", h("code", {}, settings.idScope), ": devices register at PUT /", settings.idScope, "/registrations/{registrationId}/register") : null,
    section(
      `Device registrations (${registrations.length})`,
      table(
        [
          { label: "Registration id", cell: (r) => r.registrationId },
          { label: "Enrollment", cell: (r) => (r.enrollment?.kind === "group" ? `group ${r.enrollment.name}` : "individual") },
          { label: "Status", cell: (r) => badge(r.status, r.status === "assigned" ? "pass" : r.status === "failed" ? "fail" : "unknown") },
          { label: "Substatus", cell: (r) => r.substatus ?? "" },
          { label: "Hub", cell: (r) => r.assignedHub ?? "—" },
          { label: "Device id", cell: (r) => r.deviceId ?? "" },
          { label: "EK", cell: (r) => short(r.ekNameHex ?? "", 16) },
          { label: "Updated", cell: (r) => timeCell(r.lastUpdatedAt ?? r.updatedAt ?? r.createdAt) },
        ],
        registrations,
        { label: "device registrations", empty: "No device has registered yet (tpmtrust device provision)." },
      ),
    ),
    section(
      `Individual enrollments (${enrollments.length})`,
      table(
        [
          { label: "Registration id", cell: (e) => e.registrationId },
          { label: "Device id", cell: (e) => e.deviceId ?? "" },
          { label: "Allocation", cell: (e) => e.allocation?.policy ?? "hashed" },
          { label: "Reprovisioning", cell: (e) => e.reprovisionPolicy ?? "" },
          { label: "State", cell: enabled },
          { label: "Created", cell: (e) => timeCell(e.createdAt) },
        ],
        enrollments,
        { label: "enrollments", empty: "No individual enrollments." },
      ),
    ),
    section(
      `Enrollment groups (${groups.length})`,
      table(
        [
          { label: "Name", cell: (g) => g.name },
          { label: "CA certificates", cell: (g) => String((g.caCertificates ?? []).length), class: "num" },
          { label: "Allocation", cell: (g) => g.allocation?.policy ?? "hashed" },
          { label: "State", cell: enabled },
          { label: "Created", cell: (g) => timeCell(g.createdAt) },
        ],
        groups,
        { label: "enrollment groups", empty: "No enrollment groups." },
      ),
    ),
    section(
      `Linked hubs (${hubs.length})`,
      table(
        [
          { label: "Name", cell: (x) => x.name },
          { label: "Host name", cell: (x) => x.hostname },
          { label: "Weight", cell: (x) => String(x.weight), class: "num" },
        ],
        hubs,
        { label: "hubs", empty: "No hubs linked (tpmtrust hubs add)." },
      ),
    ),
  );
}
