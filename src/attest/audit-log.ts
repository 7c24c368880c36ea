/**
 * Reading the audit log for the API and the CLI: its head, a page of entries and the chain's
 * verification. Services append their own entries (store.audit.append) in their transactions.
 */
import type { AuditAnchor, AuditEntry, AuditVerification, Store } from "../store/index.js";

export type AuditQuery = NonNullable<Parameters<Store["audit"]["list"]>[0]>;

/** The newest entry's seq (= number of entries) and hash. */
export const auditHead = (store: Store): Promise<{ seq: number; hash: string }> => store.audit.head();

/** Entries in seq order, filtered and paged by seq (see the store's audit.list). */
export const auditEntries = (store: Store, q: AuditQuery): Promise<AuditEntry[]> => store.audit.list(q);

/** Recomputes the chain; `anchors` are heads seen earlier and kept outside the database. */
export const verifyAudit = (store: Store, anchors: readonly AuditAnchor[]): Promise<AuditVerification> => store.audit.verify({ anchors });
