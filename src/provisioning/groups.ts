/**
 * Enrollment groups (admin) — beyond DPS, which has no TPM groups: any TPM whose EK certificate
 * chains to one of the group's manufacturer CAs may register, under its default registration id
 * (base32 of its EK), sending the certificate in `tpm.endorsementKeyCertificate`.
 */
import { createHash } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import type { EnrollmentGroup, ReprovisionPolicy, Store } from "../store/index.js";
import { loadCertificates, type ParsedCertificate } from "../verify/ek/index.js";
import type { Actor } from "./enrollments.js";
import { checkSettings, mergeSettings, settingsView, type SettingsInput } from "./settings.js";
import type { Twin } from "./twin.js";

export const GROUP_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

export interface GroupInput extends SettingsInput {
  name: string;
  /** the manufacturer CA certificates (trust anchors), each DER or PEM (a PEM bundle may hold several) */
  caCertificates: Uint8Array[];
  intermediateCertificates?: Uint8Array[];
}

export type GroupPatch = Partial<Omit<GroupInput, "name">>;

export interface CertificateView {
  subject: string;
  notAfter: string;
  sha256: string;
  /** base64 DER */
  der: string;
}

export interface GroupView {
  name: string;
  caCertificates: CertificateView[];
  intermediateCertificates: CertificateView[];
  initialTwin: Twin | null;
  allocation: Record<string, unknown>;
  reprovisionPolicy: ReprovisionPolicy;
  enabled: boolean;
  createdAt: number;
  updatedAt: number;
}

function checkName(name: string): string {
  if (!new RegExp(GROUP_NAME_PATTERN).test(name)) throw new TpmTrustError("ERR_VALIDATION", `group name "${name.slice(0, 140)}" must be 1-128 of A-Z a-z 0-9 . _ - (starting alphanumeric)`);
  return name;
}

/** Parses certificate inputs (DER, PEM, PEM bundles) into distinct DER certificates (chain validation judges them). */
function certificates(inputs: Uint8Array[]): Buffer[] {
  const out: Buffer[] = [];
  for (const input of inputs) for (const c of loadCertificates(input)) if (!out.some((d) => d.equals(c.der))) out.push(Buffer.from(c.der));
  return out;
}

const sha256 = (der: Buffer) => createHash("sha256").update(der).digest("hex");

function view(c: ParsedCertificate): CertificateView {
  return { subject: c.subject.text, notAfter: c.notAfter.toISOString(), sha256: sha256(c.der), der: c.der.toString("base64") };
}

function groupView(g: EnrollmentGroup): GroupView {
  const parsed = (ders: Buffer[]) => ders.flatMap((d) => loadCertificates(d)).map(view);
  return {
    name: g.name,
    caCertificates: parsed(g.caCerts),
    intermediateCertificates: parsed(g.intermediates),
    ...settingsView(g),
    createdAt: g.createdAt,
    updatedAt: g.updatedAt,
  };
}

function fields(i: GroupInput) {
  const caCerts = certificates(i.caCertificates);
  if (caCerts.length === 0) throw new TpmTrustError("ERR_VALIDATION", "an enrollment group needs at least one CA certificate");
  return { name: checkName(i.name), caCerts, intermediates: certificates(i.intermediateCertificates ?? []), ...checkSettings(i) };
}

function auditDetails(g: EnrollmentGroup) {
  const { initialTwin: _twin, ...settings } = settingsView(g);
  return { caCertificates: g.caCerts.flatMap((d) => loadCertificates(d)).map((c) => ({ subject: c.subject.text, sha256: sha256(c.der) })), intermediates: g.intermediates.length, ...settings };
}

export async function addGroup(store: Store, input: GroupInput, by: Actor): Promise<GroupView> {
  const f = fields(input);
  const g = await store.transaction(async (tx) => {
    if (await tx.provisioning.getGroup(f.name)) throw new TpmTrustError("ERR_CONFLICT", `enrollment group ${f.name} exists (update or remove it)`);
    const g = await tx.provisioning.putGroup(f, by.now);
    await tx.audit.append({ actor: by.actor, action: "provisioning.group.add", subject: f.name, outcome: "success", details: auditDetails(g), at: by.now });
    return g;
  });
  return groupView(g);
}

export async function getGroup(store: Store, name: string): Promise<GroupView> {
  const g = await store.provisioning.getGroup(name);
  if (!g) throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment group ${name}`);
  return groupView(g);
}

export async function listGroups(store: Store): Promise<GroupView[]> {
  return (await store.provisioning.listGroups()).map(groupView);
}

export async function updateGroup(store: Store, name: string, patch: GroupPatch, by: Actor): Promise<GroupView> {
  const g = await store.transaction(async (tx) => {
    const cur = await tx.provisioning.getGroup(name);
    if (!cur) throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment group ${name}`);
    const f = fields({
      name,
      caCertificates: patch.caCertificates ?? cur.caCerts,
      intermediateCertificates: patch.intermediateCertificates ?? cur.intermediates,
      ...mergeSettings(patch, cur),
    });
    const g = await tx.provisioning.putGroup(f, by.now);
    await tx.audit.append({ actor: by.actor, action: "provisioning.group.update", subject: name, outcome: "success", details: { changed: Object.keys(patch), ...auditDetails(g) }, at: by.now });
    return g;
  });
  return groupView(g);
}

/** Removes the group and the registration records of its devices. */
export async function removeGroup(store: Store, name: string, by: Actor): Promise<void> {
  await store.transaction(async (tx) => {
    if (!(await tx.provisioning.removeGroup(name))) throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment group ${name}`);
    const regs = await tx.provisioning.listRegistrations({ groupName: name, limit: 1_000_000 });
    for (const r of regs) await tx.provisioning.removeRegistration(r.registrationId);
    await tx.audit.append({ actor: by.actor, action: "provisioning.group.remove", subject: name, outcome: "success", details: { registrationsRemoved: regs.length }, at: by.now });
  });
}
