/**
 * The store: the only part of tpmtrust that knows SQL. `openStore(url)` gives typed repos over
 * SQLite (embedded default) or PostgreSQL; conventions for stored values are in schema.ts.
 */
export { openStore, resolveDbUrl, isPostgresUrl, DEFAULT_DB, type Store, type OpenOptions, type StoreStats } from "./open.js";
export type { Repos } from "./repos/index.js";
export type { DialectName } from "./ctx.js";
export { GENESIS_HASH, canonicalJson, toJsonValue, auditHash, entryLeafHash, leafData, type AuditEntry, type AuditOutcome, type JsonValue, type ChainProblem, type AuditAnchor } from "./audit-chain.js";
export type { AuditVerification, NewAuditEntry, TreeHead, StoredCheckpoint, CheckpointSigner } from "./repos/audit.js";
export { normalizeEkHash, type AllowlistEntry, type EkCaCert, type EkCaKind, type EkRevocation } from "./repos/trust.js";
export type { Host, HostEk, HostFilter, HostOrder, HostPatch, NewHost, Health, PolicyVersion, TrustCandidate } from "./repos/hosts.js";
export { HOST_ORDERS } from "./repos/hosts.js";
export type { Ak, ConfigVersions } from "./repos/aks.js";
export type { Activation } from "./repos/activations.js";
export type { Nonce } from "./repos/nonces.js";
export type { Policy, PolicyHead, PolicyKind } from "./repos/policies.js";
export { attestationRow, toAttestation, type Attestation, type NewAttestation, type Verdict } from "./repos/attestations.js";
export type { NewHostEvidence } from "./repos/host-evidence.js";
export type { ImaStateRecord } from "./repos/ima-state.js";
export type { TokenRecord, SigningKey } from "./repos/tokens.js";
export type { Webhook, Delivery } from "./repos/webhooks.js";
export type { CaAuthority, CaTemplate, IssuedCert, Crl } from "./repos/ca.js";
export type { CaPending } from "./repos/ca-pending.js";
export type { AcmeAccount, AcmeAuthz, AcmeIdentifier, AcmeOrder } from "./repos/acme.js";
export type { Enrollment, EnrollmentGroup, DeviceRegistration, Hub, ReprovisionPolicy, RegistrationPatch } from "./repos/provisioning.js";
export type { KeyServer, KeyProvider, KeyVersion, Cluster, ClusterSelector } from "./repos/keys.js";
export { PRINCIPAL_NAME_PATTERN, type AdminToken, type AdminRole } from "./repos/admin-tokens.js";
