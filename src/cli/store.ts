/** The help of --db, the local database of admin commands (src/cli/admin-client.ts). */
export const DB_OPTION_HELP = "SQLite file or postgres://… URL (default: $TPMTRUST_DB, else .tpmtrust/tpmtrust.db)";
