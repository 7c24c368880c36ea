/**
 * What to do about the failures operators meet first: a one-line hint printed under the error for a
 * missing database, an unreachable PostgreSQL or service, no swtpm listening, no TPM device. Derived
 * from the error's stable code and its message, so the modules that raise them stay as they are.
 */
import type { TpmTrustError } from "../errors.js";
import { RC_MEANINGS } from "../tpm/rc.js";

const SWTPM_START = "swtpm socket --tpm2 --tpmstate dir=/tmp/tpm --server type=tcp,port=2321 --ctrl type=tcp,port=2322 --flags not-need-init,startup-clear";

const HINTS: { code: string; match: RegExp; hint: (m: RegExpExecArray) => string | undefined }[] = [
  {
    code: "ERR_IO",
    match: /^no database at (.+)$/,
    hint: (m) => `start the service once to create it (tpmtrust serve --db ${m[1]}), or point --db or $TPMTRUST_DB at the database the service uses`,
  },
  { code: "ERR_IO", match: /PostgreSQL.*(ECONNREFUSED|ENOTFOUND|ETIMEDOUT)/, hint: () => "is PostgreSQL running and reachable at that host and port? The URL form is postgres://USER:PASSWORD@HOST:PORT/DATABASE" },
  { code: "ERR_IO", match: /PostgreSQL.*password authentication failed/, hint: () => "check the user name and password in the postgres:// URL" },
  { code: "ERR_IO", match: /PostgreSQL.*database "?([^"\s]+)"? does not exist/, hint: (m) => `create the database first (createdb ${m[1]}); tpmtrust creates its tables itself` },
  { code: "ERR_IO", match: /is already in use$/, hint: () => "another process listens there (another tpmtrust serve?); pick a free port with --listen 127.0.0.1:PORT" },
  { code: "ERR_TPM_TRANSPORT", match: /^swtpm .*ECONNREFUSED/, hint: () => `no swtpm listens there; start one (Debian: apt-get install swtpm swtpm-tools): ${SWTPM_START}` },
  {
    code: "ERR_TPM_TRANSPORT",
    match: /TPM device .*ENOENT/,
    hint: () => "this machine shows no TPM device: enable the TPM in the firmware setup and check that the tpm_crb or tpm_tis driver is loaded (ls /dev/tpm*); without a TPM use --tpm swtpm:host=HOST,port=PORT",
  },
  { code: "ERR_TPM_TRANSPORT", match: /TPM device .*EACCES/, hint: () => "no permission on the TPM device: run as root or add the user to the tss group" },
  { code: "ERR_TPM_RC", match: /(TPM_RC_[A-Z0-9_]+)/, hint: (m) => RC_MEANINGS[m[1]] && `${m[1]}: ${RC_MEANINGS[m[1]].meaning}; ${RC_MEANINGS[m[1]].fix}` },
  { code: "ERR_UNREACHABLE", match: /is unreachable: .*(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT)/, hint: () => "is tpmtrust serve running at that address? Check --server (scheme, host and port)" },
  { code: "ERR_UNREACHABLE", match: /(self[- ]signed|unable to verify|certificate)/i, hint: () => "the service's TLS certificate is not trusted here: pass its CA with --ca-cert FILE" },
];

export function hintFor(e: TpmTrustError): string | undefined {
  for (const h of HINTS) {
    if (h.code !== e.code) continue;
    const m = h.match.exec(e.message);
    const hint = m && h.hint(m);
    if (hint) return hint;
  }
  return undefined;
}
