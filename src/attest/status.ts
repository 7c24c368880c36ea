/**
 * The configuration checklist an administrator walks (`tpmtrust status`, `GET /v1/status`, the
 * dashboard's first page while something is missing): each item OK, missing or failing, with the
 * command that fixes it. Key servers are checked by opening them (master key readable, HSM token
 * logged in, KMS answering); the CA by loading its issuing key.
 */
import { isTpmTrustError } from "../errors.js";
import { listClusters, listKeyServers, listProviders, keyServerFor } from "../keys/index.js";
import { loadAuthority } from "../ca/authority.js";
import type { Store } from "../store/index.js";
import { listPolicies } from "./policies.js";
import { admissionOf, type Admission } from "./settings.js";

export type CheckState = "ok" | "missing" | "failing";

export interface StatusItem {
  id: string;
  title: string;
  state: CheckState;
  detail: string;
  /** the command that fixes it (absent when OK) */
  fix?: string;
}

export interface StatusReport {
  ok: boolean;
  items: StatusItem[];
}

const item = (id: string, title: string, state: CheckState, detail: string, fix?: string): StatusItem => ({ id, title, state, detail, ...(state !== "ok" && fix ? { fix } : {}) });
const why = (e: unknown) => (isTpmTrustError(e) ? `${e.code}: ${e.message}` : String(e));

export async function statusReport(store: Store, o: { admission?: Admission } = {}): Promise<StatusReport> {
  const items: StatusItem[] = [];
  const admission = await admissionOf(store, o.admission);

  const roots = (await store.trust.listCaCerts("root")).length;
  const intermediates = (await store.trust.listCaCerts("intermediate")).length;
  items.push(
    item(
      "trust.cas",
      "trusted TPM CAs imported",
      roots ? "ok" : "missing",
      roots ? `${roots} root(s), ${intermediates} intermediate(s)` : "no TPM manufacturer root: no EK certificate can be trusted",
      "tpmtrust trust import TrustedTpm/",
    ),
  );
  items.push(
    item(
      "admission",
      "how hosts are admitted",
      "ok",
      admission.mode === "ek-cert-chain" ? `by EK certificate chain into class ${admission.defaultClass}, and by registration` : "by registration (hosts add, hosts import)",
    ),
  );

  const hosts = await store.hosts.list();
  const classes = [...new Set([...hosts.map((h) => h.hardwareClass), ...(admission.mode === "ek-cert-chain" && admission.defaultClass ? [admission.defaultClass] : [])])].sort();
  for (const cls of classes) {
    const policies = await listPolicies(store, { hardwareClass: cls, all: false });
    const baselines = policies.filter((p) => p.kind === "baseline").length;
    const software = policies.filter((p) => p.kind === "software").length;
    items.push(
      item(
        `policy.${cls}`,
        `baseline and accepted software for class ${cls}`,
        baselines ? "ok" : "missing",
        `${baselines} baseline(s), ${software} accepted software list(s)${baselines ? "" : ": its hosts cannot attest (ERR_NO_BASELINE)"}`,
        `tpmtrust policy baseline create --name ${cls} --from ref.log --out ${cls}.json && tpmtrust policy add ${cls}.json --kind baseline --class ${cls}`,
      ),
    );
  }

  const counts = { healthy: 0, unhealthy: 0, unknown: 0 };
  for (const h of hosts) counts[h.health]++;
  items.push(
    item(
      "hosts",
      "hosts by health",
      hosts.length === 0 ? "missing" : counts.unhealthy ? "failing" : "ok",
      hosts.length === 0 ? "no host is registered" : `${counts.healthy} healthy, ${counts.unhealthy} unhealthy, ${counts.unknown} not attested yet`,
      hosts.length === 0 ? `tpmtrust hosts add host.json --name NAME --class CLASS${admission.mode === "ek-cert-chain" ? " (or tpmtrust agent activate on a host with a trusted EK certificate)" : " (or tpmtrust config set admit ek-cert-chain)"}` : "tpmtrust hosts list (the failing hosts' reasons: tpmtrust hosts show NAME)",
    ),
  );

  for (const rec of await listKeyServers(store)) {
    let state: CheckState = "ok";
    let detail = `${rec.kind}: reachable`;
    try {
      await keyServerFor(store, rec).check();
    } catch (e) {
      state = "failing";
      detail = `${rec.kind}: ${why(e)}`;
    }
    items.push(item(`keys.server.${rec.name}`, `key server ${rec.name} reachable`, state, detail, `tpmtrust keys servers list (check the ${rec.kind} settings of ${rec.name})`));
  }
  const providers = await listProviders(store);
  const clusters = await listClusters(store);
  items.push(
    item(
      "keys.providers",
      "key providers",
      providers.length ? "ok" : "missing",
      providers.length ? `${providers.length} (${providers.filter((p) => p.disabledAt).length} disabled)` : "no key provider: hosts get no keys",
      "tpmtrust keys providers add NAME [--key-server S]",
    ),
  );
  items.push(
    item(
      "keys.clusters",
      "trusted clusters",
      clusters.length ? "ok" : "missing",
      clusters.length ? `${clusters.length}` : "no cluster allows any host a provider",
      "tpmtrust keys clusters add NAME --providers P --classes CLASS",
    ),
  );

  let ca: StatusItem;
  try {
    const { authority } = await loadAuthority(store);
    ca = item("ca", "certificate authority ready", "ok", `issuing CA ${authority.id}`);
  } catch (e) {
    const missing = isTpmTrustError(e) && e.code === "ERR_NOT_FOUND";
    ca = item("ca", "certificate authority ready", missing ? "missing" : "failing", missing ? "no issuing CA" : why(e), missing ? "tpmtrust ca init" : "check the CA key's key server (tpmtrust keys servers list)");
  }
  items.push(ca);
  return { ok: items.every((i) => i.state === "ok"), items };
}
