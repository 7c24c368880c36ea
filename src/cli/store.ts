import { openStore, resolveDbUrl, type Store } from "../store/index.js";

export const DB_OPTION_HELP = "SQLite file or postgres://… URL (default: $TPMTRUST_DB, else .tpmtrust/tpmtrust.db)";

/** Opens the command's store (its --db, else $TPMTRUST_DB, else the default file), runs fn, closes it. */
export async function withStore<T>(db: string | undefined, fn: (store: Store) => Promise<T>, opts: { mustExist?: boolean } = {}): Promise<T> {
  const store = await openStore(resolveDbUrl(db), opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
