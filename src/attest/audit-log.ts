/**
 * The audit log for the API and the CLI: its head, a page of entries, verification, checkpoints
 * and proofs (docs/audit.md; signing in tokens/audit.ts). Services append their own entries
 * (store.audit.append) in their transactions.
 */
import type { AuditEntry, StoredCheckpoint, Store } from "../store/index.js";

export { checkpointAudit, parseCheckpoint, proveConsistency, proveInclusion, verifyAudit, type AuditReport, type Checkpoint, type ConsistencyProof, type InclusionProof } from "../tokens/audit.js";

export type AuditQuery = NonNullable<Parameters<Store["audit"]["list"]>[0]>;

/** The newest entry's seq (0: none) and the newest checkpoint, if any. */
export const auditHead = (store: Store): Promise<{ seq: number; checkpoint: StoredCheckpoint | undefined }> => store.audit.head();

/** Entries in seq order, filtered and paged by seq (see the store's audit.list). */
export const auditEntries = (store: Store, q: AuditQuery): Promise<AuditEntry[]> => store.audit.list(q);
