/**
 * What the store reports instead of dropping: an audit entry that could not be appended (the
 * append then fails with ERR_AUDIT_WRITE_FAILED, and with it the decision it was to record) and
 * PostgreSQL pool or connection errors. The service logs and counts them (server/app.ts).
 */
export type StoreFault = { kind: "audit-append"; action: string; error: unknown } | { kind: "pool"; error: unknown };

export class StoreFaults {
  private readonly listeners = new Set<(f: StoreFault) => void>();

  /** Calls `fn` for every fault from now on; returns the unsubscribe function. */
  subscribe(fn: (f: StoreFault) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  report(f: StoreFault): void {
    for (const l of this.listeners) l(f);
  }
}
