import type { Ctx } from "../ctx.js";
import { acmeRepo } from "./acme.js";
import { activationsRepo } from "./activations.js";
import { adminTokensRepo } from "./admin-tokens.js";
import { aksRepo } from "./aks.js";
import { attestationsRepo } from "./attestations.js";
import { auditRepo } from "./audit.js";
import { caRepo } from "./ca.js";
import { caPendingRepo } from "./ca-pending.js";
import { hostEvidenceRepo } from "./host-evidence.js";
import { hostsRepo } from "./hosts.js";
import { imaStateRepo } from "./ima-state.js";
import { keysRepo } from "./keys.js";
import { noncesRepo } from "./nonces.js";
import { policiesRepo } from "./policies.js";
import { provisioningRepo } from "./provisioning.js";
import { rateLimitsRepo } from "./rate-limits.js";
import { settingsRepo } from "./settings.js";
import { signingKeysRepo, tokensRepo } from "./tokens.js";
import { trustRepo } from "./trust.js";
import { verdictsRepo } from "./verdicts.js";
import { webhooksRepo } from "./webhooks.js";

/** Every repo, bound to one connection or one transaction. A new area adds its repo here. */
export function makeRepos(ctx: Ctx) {
  return {
    trust: trustRepo(ctx),
    hosts: hostsRepo(ctx),
    aks: aksRepo(ctx),
    activations: activationsRepo(ctx),
    nonces: noncesRepo(ctx),
    policies: policiesRepo(ctx),
    attestations: attestationsRepo(ctx),
    verdicts: verdictsRepo(ctx),
    hostEvidence: hostEvidenceRepo(ctx),
    imaState: imaStateRepo(ctx),
    tokens: tokensRepo(ctx),
    signingKeys: signingKeysRepo(ctx),
    webhooks: webhooksRepo(ctx),
    ca: caRepo(ctx),
    caPending: caPendingRepo(ctx),
    acme: acmeRepo(ctx),
    provisioning: provisioningRepo(ctx),
    keys: keysRepo(ctx),
    audit: auditRepo(ctx),
    adminTokens: adminTokensRepo(ctx),
    rateLimits: rateLimitsRepo(ctx),
    settings: settingsRepo(ctx),
  };
}

export type Repos = ReturnType<typeof makeRepos>;
