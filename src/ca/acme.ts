/**
 * ACME (RFC 8555) for the key attestation CA, with the device-attest-01 challenge in its `tpm`
 * format (draft-ietf-acme-device-attest). A subset: directory, newNonce, newAccount (account
 * POST-as-GET, deactivation), newOrder, authorization, challenge, finalize, certificate download.
 * Not implemented: keyChange, revokeCert (use the admin API), external account binding, other
 * challenge types, pre-authorization.
 *
 * One directory per certificate template (`/acme/{template}/directory`): the template's rules and
 * key attestation settings apply to what ACME issues. Identifiers are `permanent-identifier` with
 * the name of a registered host; device-attest-01 proves it with a TPM2_Certify of the new key by an
 * AK bound to that host, whose AK certificate (x5c[0]) comes from tpmtrust's attestation CA.
 * `user-credentials` never passes over ACME (no enroller token vouches). The template's host
 * requesters apply; the certificate names exactly the order's identifier.
 *
 * Errors are TpmTrustErrors whose details.acme names the ACME error type (the route answers with
 * `urn:ietf:params:acme:error:<type>`).
 */
import { createHash, randomBytes } from "node:crypto";
import { calculateJwkThumbprint, flattenedVerify, importJWK, type JWK } from "jose";
import { TpmTrustError, isTpmTrustError, type ErrorCode } from "../errors.js";
import { samePublicKey, spkiFromTpmt } from "../crypto/keys.js";
import type { AcmeAccount, AcmeAuthz, AcmeOrder, NewAuditEntry, Store } from "../store/index.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import { parseCsr, verifyCsrSignature, type ParsedCsr } from "../verify/csr.js";
import { decodeAttObj, verifyTpmAttStmt } from "../verify/device-attest.js";
import { EKU_AIK_CERTIFICATE, certificatePublicKey, loadCertificate, validateChain } from "../verify/ek/index.js";
import { ATTESTATION_CA_KIND } from "./ak-ca.js";
import { ISSUING_KIND } from "./authority.js";
import { ADCS_EVENT, countNonce, hostAdmitted, type NonceLimit } from "./enroll.js";
import { checkRequest, issueFromTemplate, requestedNames } from "./issue.js";
import { POLICY_OF, type TrustModel } from "./oids.js";
import { getTemplate, type CertTemplate } from "./templates.js";
import { evaluateTrustModels } from "./trust-models.js";

const ACME_NONCE_PURPOSE = "acme";
const NONCE_TTL_MS = 60 * 60_000;
const ORDER_TTL_MS = 60 * 60_000;
export const CHALLENGE_TYPE = "device-attest-01";
export const IDENTIFIER_TYPE = "permanent-identifier";
const ALGS = ["ES256", "ES384", "RS256", "PS256"];
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function acmeError(type: string, code: ErrorCode, message: string, details: Record<string, unknown> = {}): TpmTrustError {
  return new TpmTrustError(code, message, { acme: type, ...details });
}

/** The ACME problem type of an error: its own, else one that fits its code. */
export function acmeType(e: TpmTrustError): string {
  const own = e.details?.acme;
  if (typeof own === "string") return own;
  if (e.code.startsWith("ERR_PARSE_") || e.code === "ERR_VALIDATION" || e.code === "ERR_USAGE") return "malformed";
  if (e.code === "ERR_NOT_FOUND") return "malformed";
  if (e.code === "ERR_UNAUTHENTICATED" || e.code === "ERR_FORBIDDEN") return "unauthorized";
  if (e.code.startsWith("ERR_NONCE_")) return "badNonce";
  if (e.code === "ERR_TOO_MANY_ATTEMPTS") return "rateLimited";
  if (e.code === "ERR_INTERNAL" || e.code === "ERR_IO" || e.code === "ERR_AUDIT_WRITE_FAILED" || e.code === "ERR_STORE_BUSY") return "serverInternal";
  return "badAttestationStatement";
}

/** URLs of the ACME resources, under the service's base URL. */
export class AcmeUrls {
  constructor(readonly base: string) {}
  directory = (template: string) => `${this.base}/acme/${template}/directory`;
  newNonce = () => `${this.base}/acme/new-nonce`;
  newAccount = () => `${this.base}/acme/new-account`;
  newOrder = (template: string) => `${this.base}/acme/${template}/new-order`;
  account = (id: string) => `${this.base}/acme/acct/${id}`;
  accountOrders = (id: string) => `${this.base}/acme/acct/${id}/orders`;
  order = (id: string) => `${this.base}/acme/order/${id}`;
  finalize = (id: string) => `${this.base}/acme/order/${id}/finalize`;
  authz = (id: string) => `${this.base}/acme/authz/${id}`;
  challenge = (id: string) => `${this.base}/acme/chall/${id}`;
  certificate = (id: string) => `${this.base}/acme/cert/${id}`;
}

export async function newNonce(store: Store, now: number, limit: NonceLimit): Promise<string> {
  await countNonce(store, ACME_NONCE_PURPOSE, limit, now);
  return (await store.nonces.issue({ purpose: ACME_NONCE_PURPOSE, ttlMs: NONCE_TTL_MS, at: now, bytes: 16 })).value.toString("base64url");
}

export interface JwsBody {
  protected: string;
  payload: string;
  signature: string;
}

export interface VerifiedRequest {
  /** the parsed payload; undefined for POST-as-GET (empty payload) */
  payload: Record<string, unknown> | undefined;
  jwk?: JWK;
  account?: AcmeAccount;
}

function b64json(s: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  } catch {
    throw acmeError("malformed", "ERR_VALIDATION", `${what} is not base64url JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw acmeError("malformed", "ERR_VALIDATION", `${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * RFC 8555 §6.2–6.5: the protected header (alg, nonce, url, exactly one of jwk/kid), the nonce
 * (single use), the URL, the signature with the account key (kid) or the given key (jwk, newAccount).
 */
export async function verifyRequest(store: Store, body: JwsBody, o: { url: string; urls: AcmeUrls; expect: "jwk" | "kid"; now: number }): Promise<VerifiedRequest> {
  const header = b64json(body.protected, "the protected header");
  const alg = header.alg;
  if (typeof alg !== "string" || !ALGS.includes(alg)) throw acmeError("badSignatureAlgorithm", "ERR_SIGNATURE_SCHEME", `alg must be one of ${ALGS.join(", ")}`, { algorithms: ALGS });
  if (typeof header.nonce !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(header.nonce)) throw acmeError("badNonce", "ERR_NONCE_UNKNOWN", "the protected header has no valid nonce");
  if (header.url !== o.url) throw acmeError("unauthorized", "ERR_VALIDATION", `the protected header's url ${JSON.stringify(header.url)} is not this request's URL ${o.url}`);
  if ((header.jwk === undefined) === (header.kid === undefined)) throw acmeError("malformed", "ERR_VALIDATION", "the protected header needs exactly one of jwk and kid");
  try {
    await store.nonces.consume({ value: Buffer.from(header.nonce, "base64url"), purpose: ACME_NONCE_PURPOSE, at: o.now });
  } catch (e) {
    if (isTpmTrustError(e)) throw acmeError("badNonce", e.code, `the nonce is not valid: ${e.message}`);
    throw e;
  }
  let key: CryptoKey | Uint8Array;
  let jwk: JWK | undefined;
  let account: AcmeAccount | undefined;
  if (o.expect === "jwk") {
    if (typeof header.jwk !== "object" || header.jwk === null) throw acmeError("malformed", "ERR_VALIDATION", "this request must carry the account key as jwk");
    jwk = header.jwk as JWK;
    if (jwk.d !== undefined || jwk.k !== undefined) throw acmeError("malformed", "ERR_VALIDATION", "jwk must be a public key");
    try {
      key = (await importJWK(jwk, alg)) as CryptoKey;
    } catch (e) {
      throw acmeError("badPublicKey", "ERR_PARSE_FORMAT", `jwk is not a ${alg} public key: ${(e as Error).message}`);
    }
  } else {
    const prefix = o.urls.account("");
    if (typeof header.kid !== "string" || !header.kid.startsWith(prefix)) throw acmeError("malformed", "ERR_VALIDATION", "this request must name its account (kid)");
    account = await store.acme.getAccount(header.kid.slice(prefix.length));
    if (!account) throw acmeError("accountDoesNotExist", "ERR_NOT_FOUND", "no such account");
    if (account.status !== "valid") throw acmeError("unauthorized", "ERR_DISABLED", `the account is ${account.status}`);
    key = (await importJWK(account.jwk as JWK, alg).catch(() => {
      throw acmeError("badSignatureAlgorithm", "ERR_SIGNATURE_SCHEME", `the account key does not sign with ${alg}`);
    })) as CryptoKey;
  }
  try {
    await flattenedVerify({ protected: body.protected, payload: body.payload, signature: body.signature }, key, { algorithms: [alg] });
  } catch {
    throw acmeError("unauthorized", "ERR_SIGNATURE_INVALID", "the JWS signature does not verify");
  }
  return { payload: body.payload === "" ? undefined : b64json(body.payload, "the payload"), ...(jwk ? { jwk } : {}), ...(account ? { account } : {}) };
}

const thumbprint = (jwk: JWK | Record<string, unknown>) => calculateJwkThumbprint(jwk as JWK, "sha256");

export function accountView(a: AcmeAccount, urls: AcmeUrls) {
  return { status: a.status, contact: a.contact, orders: urls.accountOrders(a.id) };
}

function contacts(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 4 || v.some((c) => typeof c !== "string" || !/^mailto:[^@\s,]+@[^@\s,]+$/.test(c))) {
    throw acmeError("invalidContact", "ERR_VALIDATION", "contact must be up to 4 mailto: URLs");
  }
  return v as string[];
}

/** newAccount (§7.3): returns the account and whether it was created. */
export async function newAccount(store: Store, req: VerifiedRequest, c: { now: number }): Promise<{ account: AcmeAccount; created: boolean }> {
  const p = req.payload ?? {};
  if (p.externalAccountBinding !== undefined) throw acmeError("malformed", "ERR_VALIDATION", "external account binding is not supported");
  const tp = await thumbprint(req.jwk!);
  const existing = await store.acme.accountByThumbprint(tp);
  if (existing) return { account: existing, created: false };
  if (p.onlyReturnExisting === true) throw acmeError("accountDoesNotExist", "ERR_NOT_FOUND", "no account for this key");
  const account = await store.transaction(async (tx) => {
    const account = await tx.acme.addAccount({ thumbprint: tp, jwk: req.jwk as Record<string, unknown>, contact: contacts(p.contact), at: c.now });
    await tx.audit.append({ actor: `acme:${account.id}`, action: "acme.account.create", subject: account.id, outcome: "success", details: { thumbprint: tp }, at: c.now });
    return account;
  });
  return { account, created: true };
}

/** Account POST (§7.3.2, §7.3.6): POST-as-GET, contact update, deactivation. */
export async function updateAccount(store: Store, req: VerifiedRequest, id: string, c: { now: number }): Promise<AcmeAccount> {
  const a = req.account!;
  if (a.id !== id) throw acmeError("unauthorized", "ERR_FORBIDDEN", "this is not the requester's account");
  const p = req.payload;
  if (p) {
    if (p.status !== undefined && p.status !== "deactivated") throw acmeError("malformed", "ERR_VALIDATION", 'status may only become "deactivated"');
    const contact = p.contact !== undefined ? { contact: contacts(p.contact) } : {};
    await store.transaction(async (tx) => {
      await tx.acme.updateAccount(id, { ...(p.status ? { status: "deactivated" } : {}), ...contact });
      if (p.status) await tx.audit.append({ actor: `acme:${id}`, action: "acme.account.deactivate", subject: id, outcome: "success", at: c.now });
    });
  }
  return (await store.acme.getAccount(id))!;
}

/** newOrder (§7.4): one permanent-identifier, under the directory's template. */
export async function newOrder(store: Store, req: VerifiedRequest, template: string, c: { now: number }): Promise<AcmeOrder> {
  await getTemplate(store, template);
  const p = req.payload ?? {};
  for (const k of Object.keys(p)) if (k !== "identifiers") throw acmeError("malformed", "ERR_VALIDATION", `order field ${k} is not supported (notBefore/notAfter come from the template)`);
  const ids = p.identifiers;
  if (!Array.isArray(ids) || ids.length !== 1) throw acmeError("malformed", "ERR_VALIDATION", "an order names exactly one identifier");
  const id = ids[0] as { type?: unknown; value?: unknown };
  if (typeof id !== "object" || id === null || Object.keys(id).some((k) => k !== "type" && k !== "value")) throw acmeError("malformed", "ERR_VALIDATION", "an identifier is {type, value}");
  if (id.type !== IDENTIFIER_TYPE) throw acmeError("unsupportedIdentifier", "ERR_VALIDATION", `only ${IDENTIFIER_TYPE} identifiers are supported`);
  if (typeof id.value !== "string" || !HOST_NAME.test(id.value)) throw acmeError("rejectedIdentifier", "ERR_VALIDATION", "the identifier must be the name of a registered host");
  const identifier = id.value;
  return store.transaction(async (tx) => {
    const { order } = await tx.acme.createOrder({
      accountId: req.account!.id,
      template,
      identifiers: [{ type: IDENTIFIER_TYPE, value: identifier }],
      expiresAt: c.now + ORDER_TTL_MS,
      tokens: [randomBytes(32).toString("base64url")],
      at: c.now,
    });
    await tx.audit.append({ actor: `acme:${req.account!.id}`, action: "acme.order.create", subject: order.id, outcome: "success", details: { template, identifier }, at: c.now });
    return order;
  });
}

/** The order as the account may see it, its status brought up to date from its authorizations and expiry. */
export async function loadOrder(store: Store, id: string, account: AcmeAccount, now: number): Promise<{ order: AcmeOrder; authzs: AcmeAuthz[] }> {
  const order = await store.acme.getOrder(id);
  if (!order || order.accountId !== account.id) throw acmeError("malformed", "ERR_NOT_FOUND", "no such order for this account");
  const authzs = await store.acme.authzsOf(id);
  if (order.status === "pending") {
    const next = now >= order.expiresAt || authzs.some((a) => a.status === "invalid") ? "invalid" : authzs.every((a) => a.status === "valid") ? "ready" : undefined;
    if (next) await store.acme.moveOrder(id, "pending", { status: next });
    return { order: (await store.acme.getOrder(id))!, authzs };
  }
  return { order, authzs };
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export function orderView(o: AcmeOrder, authzs: AcmeAuthz[], urls: AcmeUrls) {
  return {
    status: o.status,
    expires: iso(o.expiresAt),
    identifiers: o.identifiers,
    authorizations: authzs.map((a) => urls.authz(a.id)),
    finalize: urls.finalize(o.id),
    ...(o.certSerial ? { certificate: urls.certificate(o.id) } : {}),
    ...(o.error ? { error: o.error } : {}),
  };
}

export function challengeView(a: AcmeAuthz, urls: AcmeUrls) {
  return {
    type: CHALLENGE_TYPE,
    url: urls.challenge(a.id),
    token: a.token,
    status: a.challengeStatus,
    ...(a.validatedAt ? { validated: iso(a.validatedAt) } : {}),
    ...(a.error ? { error: a.error } : {}),
  };
}

export function authzView(a: AcmeAuthz, urls: AcmeUrls) {
  return { identifier: a.identifier, status: a.status, expires: iso(a.expiresAt), challenges: [challengeView(a, urls)] };
}

/** An authorization (and its order) the account owns. */
export async function loadAuthz(store: Store, id: string, account: AcmeAccount): Promise<{ authz: AcmeAuthz; order: AcmeOrder }> {
  const authz = await store.acme.getAuthz(id);
  const order = authz && (await store.acme.getOrder(authz.orderId));
  if (!authz || !order || order.accountId !== account.id) throw acmeError("malformed", "ERR_NOT_FOUND", "no such authorization for this account");
  return { authz, order };
}

/** ACME problem document for an error (stored with a challenge or order). */
function problemOf(e: TpmTrustError): Record<string, unknown> {
  return { type: `urn:ietf:params:acme:error:${acmeType(e)}`, detail: e.message, code: e.code };
}

/** What a valid device-attest-01 proved, kept with the authorization. */
interface Proof {
  keyFingerprint: string;
  host: string;
  akName: string;
  trustModels: TrustModel[];
  policies: string[];
  /** required-if-capable: the EK failed the trust models, and the certificate is issued without their policies */
  attestationFailure?: { code: string; reason: string };
}

/**
 * The device-attest-01 response: the AK certificate chains to the attestation CA and is the
 * certificate of an AK bound to the identifier's host; the statement verifies with that AK over
 * SHA-256(keyAuthorization); the host's EK passes the template's trust models.
 */
async function verifyDeviceAttest(store: Store, attObj: Buffer, o: { authz: AcmeAuthz; template: CertTemplate; keyAuthorization: string; now: number }): Promise<Proof> {
  const st = decodeAttObj(attObj);
  const akCert = loadCertificate(st.x5c[0]);
  const attestationCa = await store.ca.currentAuthority(ATTESTATION_CA_KIND);
  if (!attestationCa) throw new TpmTrustError("ERR_CHAIN_UNTRUSTED", "this service has no attestation CA yet (no AK was activated)");
  validateChain({ leaf: akCert, intermediates: st.x5c.slice(1).map((c) => loadCertificate(c)), roots: [loadCertificate(attestationCa.cert)], at: new Date(o.now), requiredEku: EKU_AIK_CERTIFICATE });
  const issued = await store.ca.getCert(akCert.serialNumber);
  const akName = typeof issued?.attestation?.akName === "string" ? Buffer.from(issued.attestation.akName, "hex") : undefined;
  const ak = akName && (await store.aks.get(akName));
  if (!ak) throw new TpmTrustError("ERR_AK_NOT_BOUND", "the AK certificate names no AK bound to a registered host");
  const akPublic = decodeTpmtPublic(ak.public);
  if (!samePublicKey(certificatePublicKey(akCert), akPublic)) throw new TpmTrustError("ERR_KEY_MISMATCH", "the AK certificate's key is not the bound AK's");
  if (ak.hostName !== o.authz.identifier.value) {
    throw acmeError("rejectedIdentifier", "ERR_POLICY_FAILED", `the attested AK belongs to host ${ak.hostName}, not ${o.authz.identifier.value}`);
  }
  const facts = verifyTpmAttStmt(st, { ak: akPublic, keyAuthorization: o.keyAuthorization });
  let trustModels: TrustModel[] = [];
  let attestationFailure: Proof["attestationFailure"];
  if (o.template.keyAttestation.mode !== "none") {
    const m = await evaluateTrustModels(store, { host: ak.hostName }, o.template.keyAttestation.trustModels, { userVouched: false, now: o.now });
    if (m.passed.length === 0) {
      const reason = `the TPM's EK is not trusted under template ${o.template.name}'s trust models: ${Object.entries(m.outcomes).map(([k, v]) => `${k}: ${v!.reason}`).join("; ")}`;
      if (o.template.keyAttestation.mode !== "required-if-capable") throw new TpmTrustError("ERR_EK_NOT_TRUSTED", reason);
      // AD CS: issued even if attestation was not successful, without its policies
      attestationFailure = { code: "ERR_EK_NOT_TRUSTED", reason };
    }
    trustModels = m.passed;
  }
  return {
    keyFingerprint: createHash("sha256").update(spkiFromTpmt(facts.key)).digest("hex"),
    host: ak.hostName,
    akName: akName.toString("hex"),
    trustModels,
    policies: o.template.keyAttestation.includeIssuancePolicies ? trustModels.map((m) => POLICY_OF[m]) : [],
    ...(attestationFailure ? { attestationFailure } : {}),
  };
}

/**
 * Challenge POST (§7.5.1): validates device-attest-01 once; answers the challenge as it now stands.
 * The authorization is settled in one transaction with its audit entries: when they cannot be
 * written it stays pending (ERR_AUDIT_WRITE_FAILED), to be answered again.
 */
export async function respondChallenge(store: Store, req: VerifiedRequest, id: string, c: { now: number }): Promise<AcmeAuthz> {
  const { authz, order } = await loadAuthz(store, id, req.account!);
  if (authz.challengeStatus !== "pending") return authz;
  const p = req.payload ?? {};
  if (typeof p.attObj !== "string" || !/^[A-Za-z0-9_-]+$/.test(p.attObj)) throw acmeError("malformed", "ERR_VALIDATION", "device-attest-01 is answered with {attObj: base64url CBOR}");
  const actor = `acme:${req.account!.id}`;
  const attestationError = (details: Record<string, unknown>): NewAuditEntry => ({
    actor,
    action: "ca.attestation.error",
    subject: order.template,
    outcome: "failure",
    details: { adcsEvent: ADCS_EVENT.attestationError, ...details, acmeOrder: order.id, identifier: authz.identifier.value },
    at: c.now,
  });
  let proof: Proof;
  try {
    if (c.now >= authz.expiresAt) throw acmeError("malformed", "ERR_NONCE_EXPIRED", "the authorization has expired");
    const template = await getTemplate(store, order.template);
    const keyAuthorization = `${authz.token}.${await thumbprint(req.account!.jwk)}`;
    proof = await verifyDeviceAttest(store, Buffer.from(p.attObj, "base64url"), { authz, template, keyAuthorization, now: c.now });
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    await store.transaction(async (tx) => {
      if (await tx.acme.settleAuthz(id, { valid: false, at: c.now, error: problemOf(e) })) await tx.audit.append(attestationError({ code: e.code, reason: e.message }));
    });
    return (await store.acme.getAuthz(id))!;
  }
  await store.transaction(async (tx) => {
    if (!(await tx.acme.settleAuthz(id, { valid: true, at: c.now, attestation: { ...proof } }))) return;
    if (proof.attestationFailure) await tx.audit.append(attestationError({ ...proof.attestationFailure, issuedWithoutAttestation: true }));
    await tx.audit.append({ actor, action: "acme.challenge.valid", subject: id, outcome: "success", details: { order: order.id, host: proof.host, trustModels: proof.trustModels }, at: c.now });
  });
  return (await store.acme.getAuthz(id))!;
}

/**
 * RFC 8555 §7.4: the CSR names exactly the order's identifier. Its subject is the single attribute
 * CN=<identifier> and every subjectAltName is dns:<identifier>; anything else is badCSR.
 */
function requireOrderNames(csr: ParsedCsr, identifier: string): void {
  const refuse = (what: string) => acmeError("badCSR", "ERR_POLICY_FAILED", `the CSR names ${what}; an order for ${identifier} allows only CN=${identifier} and dns:${identifier}`, { identifier, subject: csr.subject });
  const attrs = csr.subjectRdns.flat();
  if (csr.subjectRdns.length !== 1 || attrs.length !== 1 || attrs[0].type !== "2.5.4.3" || attrs[0].value !== identifier) throw refuse(`the subject "${csr.subject}"`);
  for (const san of csr.sans) if (san.type !== "dns" || san.value !== identifier) throw refuse(`${san.type}:${san.value}`);
}

/**
 * Finalize (§7.4): the CSR must be for the attested key and name the identifier; issues under the
 * template. The certificate is stored in one transaction with the order's move to valid and its
 * audit entry: when the entry cannot be written (ERR_AUDIT_WRITE_FAILED) nothing is issued and the
 * order is ready again.
 */
export async function finalize(store: Store, req: VerifiedRequest, id: string, c: { now: number; publicUrl?: string }): Promise<AcmeOrder> {
  const { order, authzs } = await loadOrder(store, id, req.account!, c.now);
  if (order.status !== "ready") throw acmeError("orderNotReady", "ERR_CONFLICT", `the order is ${order.status}, not ready`);
  const p = req.payload ?? {};
  if (typeof p.csr !== "string" || !/^[A-Za-z0-9_-]+$/.test(p.csr)) throw acmeError("malformed", "ERR_VALIDATION", "finalize carries {csr: base64url DER}");
  const actor = `acme:${req.account!.id}`;
  const denied = (e: TpmTrustError): NewAuditEntry => ({ actor, action: "ca.request.denied", subject: order.template, outcome: "denied", details: { adcsEvent: ADCS_EVENT.requestDenied, code: e.code, reason: e.message, acmeOrder: id }, at: c.now });
  const proof = authzs[0].attestation as unknown as Proof;
  const template = await getTemplate(store, order.template);
  if (!hostAdmitted(template, await store.hosts.get(proof.host))) {
    const e = acmeError("unauthorized", "ERR_FORBIDDEN", `template ${template.name} does not admit host ${proof.host} as a requester`, { rule: "requesters.hosts", host: proof.host });
    await store.audit.append(denied(e));
    throw e;
  }
  const badCsr = (e: unknown) => (isTpmTrustError(e) ? acmeError("badCSR", e.code, e.message, e.details) : e);
  let csr;
  try {
    csr = parseCsr(Buffer.from(p.csr, "base64url"));
    await verifyCsrSignature(csr);
    checkRequest(template, csr);
    requireOrderNames(csr, order.identifiers[0].value);
    if (createHash("sha256").update(csr.publicKey.export({ type: "spki", format: "der" })).digest("hex") !== proof.keyFingerprint) throw new TpmTrustError("ERR_KEY_MISMATCH", "the CSR's key is not the key device-attest-01 attested");
  } catch (e) {
    const err = badCsr(e);
    if (isTpmTrustError(err)) await store.audit.append(denied(err));
    throw err;
  }
  if (!(await store.acme.moveOrder(id, "ready", { status: "processing" }))) throw acmeError("orderNotReady", "ERR_CONFLICT", "the order is already being finalized");
  try {
    // the certificate, the order's move to valid and the entry commit together
    await issueFromTemplate(store, {
      template,
      csr,
      names: requestedNames(csr),
      policies: proof.policies,
      hostName: proof.host,
      attestation: {
        format: "acme-device-attest-01",
        akName: proof.akName,
        freshness: "acme-challenge",
        trustModels: proof.trustModels,
        policies: proof.policies,
        acmeOrder: id,
        ...(proof.attestationFailure ? { outcome: "failed", ...proof.attestationFailure } : {}),
      },
      now: c.now,
      publicUrl: c.publicUrl,
      commit: async (tx, cert) => {
        await tx.acme.moveOrder(id, "processing", { status: "valid", certSerial: cert.serial });
        await tx.audit.append({ actor, action: "ca.certificate.issue", subject: order.template, outcome: "success", details: { serial: cert.serial, subject: cert.subject, host: proof.host, policies: proof.policies, trustModels: proof.trustModels, format: "acme", acmeOrder: id }, at: c.now });
      },
    });
  } catch (e) {
    try {
      if (!isTpmTrustError(e) || e.code === "ERR_AUDIT_WRITE_FAILED") throw e;
      await store.transaction(async (tx) => {
        await tx.acme.moveOrder(id, "processing", { status: "invalid", error: problemOf(e) });
        await tx.audit.append(denied(e));
      });
    } catch (undecided) {
      // nothing was decided (the log or the store failed): the order may be finalized again
      await store.acme.moveOrder(id, "processing", { status: "ready" });
      throw undecided;
    }
  }
  return (await store.acme.getOrder(id))!;
}

/** The order's certificate chain: end entity then the issuing CA (§7.4.2). */
export async function certificateChain(store: Store, req: VerifiedRequest, id: string): Promise<Buffer[]> {
  const order = await store.acme.getOrder(id);
  if (!order || order.accountId !== req.account!.id || !order.certSerial) throw acmeError("malformed", "ERR_NOT_FOUND", "no certificate for this account here");
  const cert = await store.ca.getCert(order.certSerial);
  const issuing = cert && (await store.ca.getAuthority(cert.issuerId));
  if (!cert || !issuing || issuing.kind !== ISSUING_KIND) throw acmeError("serverInternal", "ERR_INTERNAL", "the order's certificate is missing");
  return [cert.der, issuing.cert];
}

/** The account's orders. */
export const accountOrders = (store: Store, accountId: string): Promise<AcmeOrder[]> => store.acme.ordersOf(accountId);

/** The order's authorizations. */
export const orderAuthzs = (store: Store, orderId: string): Promise<AcmeAuthz[]> => store.acme.authzsOf(orderId);
