import type { Generated } from "kysely";
/**
 * Row types of every table, exactly as stored, for kysely. Conventions (identical on SQLite and
 * PostgreSQL, so one query runs on both):
 * - times: `*_at` columns are epoch milliseconds (UTC) in BIGINT (SQLite INTEGER), never SQL dates;
 * - binary values (public areas, names, digests, DER certificates): lowercase hex TEXT;
 * - JSON documents: TEXT holding JSON (parsed and serialised by the repos, never by SQL);
 * - flags: INTEGER 0/1; "disabled/revoked/retired" states are nullable `*_at` times instead;
 * - ids without a natural key: TEXT (random UUID).
 * Repos translate rows to camelCase domain objects (Buffers, numbers, parsed JSON).
 */

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: number;
}

// --- trust ---
export interface EkAllowlistTable {
  /** hex SHA-256 of the EK public key, lowercase */
  ek_hash: string;
  label: string | null;
  source: string | null;
  added_at: number;
}
export interface EkRevocationsTable {
  /** hex SHA-256 of the EK public key, lowercase */
  ek_hash: string;
  reason: string | null;
  revoked_at: number;
}
/** ek_roots and ek_intermediates */
export interface EkCaCertTable {
  /** hex SHA-256 of the DER certificate */
  fingerprint: string;
  subject: string;
  cert: string;
  added_at: number;
}
export interface AllowlistDirsTable {
  path: string;
  added_at: number;
}
/** one row (id 1): bumped by every change to the allow-list, its folders, roots or intermediates */
export interface TrustVersionTable {
  id: number;
  version: number;
}
/** one row (id 1): bumped by every policy change (new version, enabled, disabled) */
export interface PoliciesVersionTable {
  id: number;
  version: number;
}

// --- hosts ---
export interface HostsTable {
  name: string;
  hardware_class: string;
  policy_version: string;
  trust_method: string | null;
  health: string;
  health_reason: string | null;
  health_changed_at: number | null;
  last_attestation_at: number | null;
  deadline_at: number | null;
  /** JSON string[] */
  tags: string;
  /** JSON: TPM manufacturer, model, firmware as `agent identify` reports them */
  platform: string | null;
  created_at: number;
  updated_at: number;
  /** set while an administrator has disabled the host */
  disabled_at: number | null;
}
export interface HostEksTable {
  /** hex Name of the EK (nameAlg ‖ H(TPMT_PUBLIC)); unique across hosts */
  ek_name: string;
  host_name: string;
  /** hex TPMT_PUBLIC */
  public: string;
  /** hex DER EK certificate */
  cert: string | null;
}
export interface AksTable {
  /** hex Name of the AK */
  name: string;
  host_name: string;
  /** hex TPMT_PUBLIC */
  public: string;
  bound_at: number;
  /** hex DER AK certificate issued by the attestation CA */
  ak_cert: string | null;
}
export interface ActivationsTable {
  id: string;
  host_name: string;
  ak_name: string;
  ak_public: string;
  ek_name: string;
  /** hex SHA-256 of the credential secret (the secret itself is never stored) */
  secret_hash: string;
  created_at: number;
  expires_at: number;
  completed_at: number | null;
  failures: number;
}
export interface NoncesTable {
  /** hex */
  value: string;
  purpose: string;
  subject: string | null;
  issued_at: number;
  expires_at: number;
  consumed_at: number | null;
}

// --- policies and verdicts ---
export interface PoliciesTable {
  id: string;
  kind: string;
  name: string;
  version: number;
  hardware_class: string | null;
  document: string;
  created_at: number;
  created_by: string | null;
  disabled_at: number | null;
  /** HGS policy version ("v1" | "v2") of the hosts this policy may judge */
  policy_version: string;
}
export interface HostEvidenceTable {
  host_name: string;
  at: number;
  /** JSON {bank: {pcr: hex}}: the values the quote verified */
  pcrs: string;
  /** base64 event log */
  event_log: string | null;
  event_log_sha256: string | null;
}

/** Incremental IMA verification of a host's current boot (one row per host). */
export interface ImaStateTable {
  host_name: string;
  /** the boot: the quote's resetCount */
  reset_count: number;
  /** ids of the runtime policy versions the entries were judged by, comma-separated */
  policies: string;
  /** entries verified, i.e. the index the next increment starts at */
  next_index: number;
  /** JSON {bank: hex}: PCR 10 after the verified entries */
  pcr10: string;
  /** failing entries in this boot */
  failures: number;
  /** JSON of the last failing entry (index, path, digest, code, reason) */
  last_failure: string | null;
  /** JSON: per policy, the learned keys and kept failures (opaque to the store) */
  state: string;
  /** random per write: a write from a stale read is refused, a cached copy is checked against it */
  version: string;
  updated_at: number;
}

export interface CaPendingTable {
  /** the request id the client quotes in its answer (a DWORD, as AD CS request ids) */
  request_id: number;
  template: string;
  /** hex DER of the PKCS#10 */
  csr: string;
  /** hex DER SubjectPublicKeyInfo of the EK from the decrypted EK info */
  ek_public: string;
  /** JSON array of hex DER EK certificates from the EK info */
  ek_certs: string;
  ek_hash: string;
  /** hex Name of the AIK the challenge was made for */
  aik_name: string;
  /** hex SHA-256 of the challenge secret (the secret itself is never stored) */
  secret_hash: string;
  /** JSON: who sent the request (the answer must come from the same requester) */
  requester: string;
  created_at: number;
  expires_at: number;
  /** when an answer was received (single use, right or wrong) */
  answered_at: number | null;
}

export interface AttestationsTable {
  id: string;
  host_name: string;
  at: number;
  verdict: string;
  reason_code: string | null;
  ak_name: string | null;
  pcr_digest: string | null;
  /** JSON diff of a failure */
  diff: string | null;
  /** JSON: policy ids/versions and other facts */
  details: string | null;
}
export interface TokensTable {
  jti: string;
  host_name: string;
  kid: string;
  attestation_id: string | null;
  issued_at: number;
  expires_at: number;
  revoked_at: number | null;
}
export interface TokenSigningKeysTable {
  kid: string;
  alg: string;
  /** JSON JWK */
  private_jwk: string;
  /** JSON JWK */
  public_jwk: string;
  created_at: number;
  retired_at: number | null;
}
export interface WebhooksTable {
  id: string;
  url: string;
  secret: string;
  /** JSON string[] of event names; [] = all */
  events: string;
  created_at: number;
  disabled_at: number | null;
}
export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  event: string;
  /** JSON */
  payload: string;
  created_at: number;
  attempts: number;
  /** null once delivered or given up */
  next_attempt_at: number | null;
  delivered_at: number | null;
  last_status: number | null;
  last_error: string | null;
}

// --- CA ---
export interface CaAuthoritiesTable {
  id: string;
  /** "root" | "issuing" | "attestation" … */
  kind: string;
  /** hex DER */
  cert: string;
  /** where the private key lives (file path, key store reference) — never the key */
  key_ref: string;
  created_at: number;
  retired_at: number | null;
}
export interface CaTemplatesTable {
  name: string;
  /** JSON template document */
  document: string;
  created_at: number;
  updated_at: number;
}
export interface CaCertsTable {
  /** hex serial number */
  serial: string;
  issuer_id: string;
  template_name: string | null;
  host_name: string | null;
  subject: string;
  not_before: number;
  not_after: number;
  /** hex DER */
  cert: string;
  /** JSON: attestation trust models that passed and evidence facts */
  attestation: string | null;
  issued_at: number;
  revoked_at: number | null;
  revocation_reason: number | null;
}
export interface CaCrlsTable {
  issuer_id: string;
  number: number;
  this_update: number;
  next_update: number;
  /** hex DER */
  crl: string;
}

// --- provisioning ---
export interface EnrollmentsTable {
  registration_id: string;
  /** hex TPMT_PUBLIC of the EK */
  ek_public: string;
  device_id: string | null;
  /** JSON */
  initial_twin: string | null;
  /** JSON allocation settings */
  allocation: string;
  reprovision_policy: string;
  enabled: number;
  created_at: number;
  updated_at: number;
}
export interface EnrollmentGroupsTable {
  name: string;
  /** hex DER of the manufacturer CA the EK certificates must chain to */
  ca_cert: string;
  /** JSON array of hex DER: further trust anchors of the group */
  extra_ca_certs: string;
  /** JSON array of hex DER: intermediates that complete paths to the anchors */
  intermediate_certs: string;
  initial_twin: string | null;
  allocation: string;
  reprovision_policy: string;
  enabled: number;
  created_at: number;
  updated_at: number;
}
export interface DeviceRegistrationsTable {
  registration_id: string;
  /** enrollment group name, null for an individual enrollment */
  group_name: string | null;
  ek_public: string;
  srk_public: string | null;
  status: string;
  substatus: string | null;
  assigned_hub: string | null;
  device_id: string | null;
  operation_id: string | null;
  etag: string;
  /** JSON */
  payload: string | null;
  /** hex HMAC key the device proves with its SAS tokens (as the provisioning service stores it: wrapped) */
  sas_key: string | null;
  /** unused: challenge keys are derived, not stored (provisioning/device-keys.ts) */
  pending_sas_key: string | null;
  /** JSON device twin (tags, desired properties) handed to the hub */
  twin: string | null;
  /** DPS error code and message of a failed assignment */
  error_code: number | null;
  error_message: string | null;
  created_at: number;
  updated_at: number;
}
export interface ProvisioningSettingsTable {
  /** always 1: one row */
  id: number;
  id_scope: string;
  updated_at: number;
}
export interface HubsTable {
  name: string;
  hostname: string;
  weight: number;
  created_at: number;
}

// --- key release ---
export interface KeyServersTable {
  name: string;
  /** "local" | "pkcs11" … */
  kind: string;
  /** JSON; never holds secrets in clear */
  config: string;
  created_at: number;
}
export interface KeyProvidersTable {
  name: string;
  key_server: string;
  primary_key_id: string;
  current_version: number;
  created_at: number;
  disabled_at: number | null;
}
export interface KeyVersionsTable {
  provider_name: string;
  version: number;
  /** opaque reference understood by the provider's key server (object id, wrapped key …) */
  key_ref: string;
  created_at: number;
  retired_at: number | null;
}
export interface ClustersTable {
  name: string;
  /** JSON { hosts?: string[], hardwareClasses?: string[], tags?: string[] } */
  selector: string;
  /** JSON string[] of key provider names */
  providers: string;
  created_at: number;
  updated_at: number;
}

// --- audit and access ---
export interface AuditTable {
  /** assigned by the database on insert (identity / rowid): unique and increasing, not gap-free */
  seq: Generated<number>;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  outcome: string;
  /** canonical JSON */
  details: string;
  /** the hash chain of entries written before schema version 12 (audit_head); null after */
  prev_hash: string | null;
  hash: string | null;
  /** position in the Merkle tree (RFC 9162 §2.1), set when a checkpoint integrates the entry */
  leaf_index: number | null;
  /** hex SHA-256(0x00 ‖ leaf data), set with leaf_index */
  leaf_hash: string | null;
}
/** One row (id = 1): the last entry of the hash chain kept before schema version 12 (frozen since). */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}
/** A signed tree head over the first tree_size leaves of the audit log. */
export interface AuditCheckpointsTable {
  tree_size: number;
  /** hex MTH of the first tree_size leaves */
  root_hash: string;
  at: number;
  kid: string;
  /** the checkpoint as signed: JWS compact serialisation */
  signed: string;
  /** JSON array of hex: roots of the tree's perfect subtrees, largest first (extends the tree) */
  frontier: string;
}
export interface AdminTokensTable {
  id: string;
  /** hex SHA-256 of the token; the token itself is never stored */
  token_hash: string;
  role: string;
  label: string | null;
  /** enroller tokens: the requester's identity, as templates name it */
  identity: string | null;
  /** the principal the token speaks for (audit actor `role:name`); null on unnamed tokens */
  name: string | null;
  created_at: number;
  revoked_at: number | null;
}
export interface SettingsTable {
  key: string;
  /** JSON */
  value: string;
  updated_at: number;
}
export interface RateLimitsTable {
  key: string;
  window_start: number;
  count: number;
}

// --- ACME ---
export interface AcmeAccountsTable {
  id: string;
  /** RFC 7638 SHA-256 thumbprint of the account key, base64url */
  thumbprint: string;
  /** JSON JWK */
  jwk: string;
  status: string;
  /** JSON string[] */
  contact: string;
  created_at: number;
}
export interface AcmeOrdersTable {
  id: string;
  account_id: string;
  template: string;
  status: string;
  /** JSON [{type, value}] */
  identifiers: string;
  expires_at: number;
  cert_serial: string | null;
  /** JSON problem */
  error: string | null;
  created_at: number;
}
export interface AcmeAuthzsTable {
  id: string;
  order_id: string;
  /** JSON {type, value} */
  identifier: string;
  status: string;
  token: string;
  challenge_status: string;
  validated_at: number | null;
  /** JSON problem */
  error: string | null;
  /** JSON: what device-attest-01 proved (key fingerprint, host, AK, trust models) */
  attestation: string | null;
  expires_at: number;
}

export interface Database {
  schema_migrations: SchemaMigrationsTable;
  ek_allowlist: EkAllowlistTable;
  ek_revocations: EkRevocationsTable;
  ek_roots: EkCaCertTable;
  ek_intermediates: EkCaCertTable;
  allowlist_dirs: AllowlistDirsTable;
  trust_version: TrustVersionTable;
  hosts: HostsTable;
  host_eks: HostEksTable;
  aks: AksTable;
  activations: ActivationsTable;
  nonces: NoncesTable;
  policies: PoliciesTable;
  policies_version: PoliciesVersionTable;
  attestations: AttestationsTable;
  host_evidence: HostEvidenceTable;
  ima_state: ImaStateTable;
  ca_pending: CaPendingTable;
  tokens: TokensTable;
  token_signing_keys: TokenSigningKeysTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  ca_authorities: CaAuthoritiesTable;
  ca_templates: CaTemplatesTable;
  ca_certs: CaCertsTable;
  ca_crls: CaCrlsTable;
  enrollments: EnrollmentsTable;
  enrollment_groups: EnrollmentGroupsTable;
  device_registrations: DeviceRegistrationsTable;
  hubs: HubsTable;
  provisioning_settings: ProvisioningSettingsTable;
  key_servers: KeyServersTable;
  key_providers: KeyProvidersTable;
  key_versions: KeyVersionsTable;
  clusters: ClustersTable;
  audit: AuditTable;
  audit_head: AuditHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  admin_tokens: AdminTokensTable;
  settings: SettingsTable;
  rate_limits: RateLimitsTable;
  acme_accounts: AcmeAccountsTable;
  acme_orders: AcmeOrdersTable;
  acme_authzs: AcmeAuthzsTable;
}
