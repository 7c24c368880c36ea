/**
 * DPS device registration with TPM attestation (`PUT /{idScope}/registrations/{registrationId}/register`):
 *   1. resolveEnrollment: the individual enrollment (same EK) or a group (EK certificate → group CA);
 *   2. without Authorization — issueChallenge: the challenge key of this EK + SRK (device-keys.ts:
 *      derived, not stored, so no challenge replaces the key another one handed out), wrapped into
 *      an authenticationKey that only this EK + SRK can import; limited per client address;
 *   3. with `Authorization: SharedAccessSignature …` — authenticate (current or challenge key),
 *      then assign (allocation, reprovisioning policy) and record the operation.
 * The device then polls the operation (status.ts). Every step is audited.
 */
import { randomUUID } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import type { DeviceRegistration, Repos } from "../store/index.js";
import { encodeTpmtPublic } from "../tpm/structures.js";
import { assign, AssignmentError, type Assignment } from "./assign.js";
import { buildAuthenticationKey, KEY_NAME } from "./authentication-key.js";
import type { ProvisioningDeps } from "./config.js";
import { authFailed, base64Field, challengeKey, checkIdScope, deviceTpm, verifySas, type DeviceTpm } from "./device-auth.js";
import type { KeyBinding } from "./device-keys.js";
import { matchEnrollment, type EnrollmentMatch } from "./enrollment-match.js";
import { normalizeRegistrationId } from "./enrollments.js";

/** The DPS DeviceRegistration body (TPM attestation); `tpm.endorsementKeyCertificate` is tpmtrust's, for enrollment groups. */
export interface DeviceRegistrationBody {
  registrationId: string;
  tpm?: { endorsementKey: string; storageRootKey: string; endorsementKeyCertificate?: string };
  payload?: unknown;
}

export type RegisterResult = { kind: "challenge"; authenticationKey: string; keyName: string } | { kind: "accepted"; operationId: string; status: "assigning" };

export interface RegisterRequest {
  idScope: string;
  registrationId: string;
  body: DeviceRegistrationBody;
  authorization?: string;
  /** the client address (limits) */
  source: string;
}

export async function register(d: ProvisioningDeps, req: RegisterRequest): Promise<RegisterResult> {
  const idScope = await checkIdScope(d, req.idScope);
  const id = normalizeRegistrationId(req.registrationId);
  if (normalizeRegistrationId(req.body.registrationId) !== id) throw new TpmTrustError("ERR_VALIDATION", "the body's registrationId differs from the one in the path");
  if (!req.body.tpm) throw new TpmTrustError("ERR_VALIDATION", "tpmtrust provisions with TPM attestation only: the body needs tpm {endorsementKey, storageRootKey}");
  const tpm = deviceTpm(req.body.tpm);
  const certificate = req.body.tpm.endorsementKeyCertificate !== undefined ? base64Field(req.body.tpm.endorsementKeyCertificate, "tpm.endorsementKeyCertificate") : undefined;
  const action = req.authorization === undefined ? "provisioning.device.challenge" : "provisioning.device.register";
  let match: EnrollmentMatch;
  try {
    match = await matchEnrollment(d.store, id, tpm.ek, certificate, new Date(d.now()));
  } catch (e) {
    if (e instanceof TpmTrustError) {
      await d.store.audit.append({ actor: `device:${id}`, action, subject: id, outcome: "denied", details: { code: e.code, reason: e.message }, at: d.now() });
    }
    throw e;
  }
  const binding: KeyBinding = { registrationId: id, ekName: tpm.ekName, srkName: tpm.srkName };
  if (req.authorization === undefined) return issueChallenge(d, id, req.source, match, tpm, binding);

  const previous = await d.store.provisioning.getRegistration(id);
  let verified;
  try {
    verified = verifySas(d, req.authorization, idScope, previous, binding, true);
  } catch (e) {
    if (e instanceof TpmTrustError) return authFailed(d, { registrationId: id, source: req.source }, action, e);
    throw e;
  }
  const record = previous ?? (await d.store.provisioning.createRegistration({ registrationId: id, groupName: groupOf(match), ekPublic: encodeTpmtPublic(tpm.ek), srkPublic: encodeTpmtPublic(tpm.srk), at: d.now() }));
  const wrapped = verified.pending ? d.keys.wrap(verified.key, binding) : record.sasKey!;
  return recordAssignment(d, id, match, tpm, record, wrapped, req.body);
}

async function issueChallenge(d: ProvisioningDeps, id: string, source: string, match: EnrollmentMatch, tpm: DeviceTpm, binding: KeyBinding): Promise<RegisterResult> {
  const now = d.now();
  await d.store.rateLimits.take(challengeKey(source), { limit: d.config.challengeLimit, windowMs: d.config.limitWindowMs, at: now, what: `challenges from ${source}` }).catch(async (e: unknown) => {
    // audited once per window and address, so a flood cannot grow the audit log
    if (e instanceof TpmTrustError && e.code === "ERR_TOO_MANY_ATTEMPTS" && e.details?.count === d.config.challengeLimit + 1) {
      await d.store.audit.append({ actor: `device:${id}`, action: "provisioning.device.challenge", subject: id, outcome: "denied", details: { code: e.code, challenges: e.details.count, source }, at: now });
    }
    throw e;
  });
  const key = d.keys.challengeKey(binding, Math.floor(now / d.config.challengePeriodMs));
  const auth = buildAuthenticationKey(tpm.ek, tpm.srk, key);
  key.fill(0);
  await d.store.transaction(async (tx) => {
    if (!(await tx.provisioning.getRegistration(id))) {
      await tx.provisioning.createRegistration({ registrationId: id, groupName: groupOf(match), ekPublic: encodeTpmtPublic(tpm.ek), srkPublic: encodeTpmtPublic(tpm.srk), at: now });
    }
    await tx.audit.append({
      actor: `device:${id}`,
      action: "provisioning.device.challenge",
      subject: id,
      outcome: "success",
      details: { enrollment: describe(match), ekName: tpm.ekName, srkName: tpm.srkName, keyName: auth.keyName },
      at: now,
    });
  });
  return { kind: "challenge", authenticationKey: auth.blob.toString("base64"), keyName: KEY_NAME };
}

const groupOf = (m: EnrollmentMatch) => (m.kind === "group" ? m.group.name : null);
const describe = (m: EnrollmentMatch) => (m.kind === "group" ? { kind: "group", name: m.group.name, certificate: m.certificate } : { kind: "individual" });

async function recordAssignment(
  d: ProvisioningDeps,
  id: string,
  match: EnrollmentMatch,
  tpm: DeviceTpm,
  previous: DeviceRegistration,
  sasKey: Buffer,
  body: DeviceRegistrationBody,
): Promise<RegisterResult> {
  const operationId = randomUUID();
  let outcome: { ok: true; a: Assignment } | { ok: false; e: AssignmentError };
  try {
    const a = await assign(d.store, {
      match,
      registrationId: id,
      previous,
      tpm: { endorsementKey: body.tpm!.endorsementKey, storageRootKey: body.tpm!.storageRootKey },
      ...(body.payload !== undefined ? { payload: body.payload } : {}),
    });
    outcome = { ok: true, a };
  } catch (e) {
    if (!(e instanceof AssignmentError)) throw e;
    outcome = { ok: false, e };
  }
  const now = d.now();
  const common = { groupName: groupOf(match), ekPublic: encodeTpmtPublic(tpm.ek), srkPublic: encodeTpmtPublic(tpm.srk), sasKey, operationId };
  await d.store.transaction(async (tx: Repos) => {
    if (outcome.ok) {
      const { a } = outcome;
      await tx.provisioning.updateRegistration(
        id,
        { ...common, status: "assigned", substatus: a.substatus, assignedHub: a.hub.hostname, deviceId: a.deviceId, twin: a.twin as Record<string, unknown> | null, payload: a.payload ?? null, errorCode: null, errorMessage: null },
        now,
      );
    } else {
      await tx.provisioning.updateRegistration(id, { ...common, status: "failed", substatus: null, errorCode: outcome.e.errorCode, errorMessage: outcome.e.message }, now);
    }
    await tx.audit.append({
      actor: `device:${id}`,
      action: "provisioning.device.assign",
      subject: id,
      outcome: outcome.ok ? "success" : "failure",
      details: outcome.ok
        ? { operationId, enrollment: describe(match), hub: outcome.a.hub.name, assignedHub: outcome.a.hub.hostname, deviceId: outcome.a.deviceId, substatus: outcome.a.substatus, previousHub: previous.assignedHub }
        : { operationId, enrollment: describe(match), errorCode: outcome.e.errorCode, reason: outcome.e.message },
      at: now,
    });
  });
  return { kind: "accepted", operationId, status: "assigning" };
}
