/**
 * Recorded attestations as the API shows them: the one place a stored attestation becomes an API
 * object (`GET /v1/attestations/{id}`, a host's timeline `GET /v1/hosts/{name}/attestations`).
 */
import { TpmTrustError } from "../errors.js";
import type { Attestation, Store } from "../store/index.js";

export interface AttestationView {
  id: string;
  host: string;
  at: number;
  verdict: Attestation["verdict"];
  /** the stored reasonCode */
  code: string | null;
  akNameHex: string | null;
  pcrDigestHex: string | null;
  diff: unknown;
  details: Record<string, unknown> | null;
}

function attestationView(a: Attestation): AttestationView {
  return {
    id: a.id,
    host: a.hostName,
    at: a.at,
    verdict: a.verdict,
    code: a.reasonCode,
    akNameHex: a.akName?.toString("hex") ?? null,
    pcrDigestHex: a.pcrDigest?.toString("hex") ?? null,
    diff: a.diff ?? null,
    details: a.details,
  };
}

/** An entry of a host's timeline: the view without the host (it is the timeline's) and the details. */
export function timelineEntry(a: Attestation): Omit<AttestationView, "host" | "details"> {
  const { host: _host, details: _details, ...entry } = attestationView(a);
  return entry;
}

/** One recorded attestation. */
export async function getAttestation(store: Store, id: string): Promise<AttestationView> {
  const a = await store.attestations.get(id);
  if (!a) throw new TpmTrustError("ERR_NOT_FOUND", `attestation ${id} not found`);
  return attestationView(a);
}
