/**
 * The audit log's checkpoints and proofs (docs/audit.md). A checkpoint is a tree head (RFC 9162
 * §4.10 in spirit) signed as a JWS (RFC 7515 compact serialisation, ES256) with the service's token
 * signing key: payload {"log", "treeSize", "rootHash", "at"}; a verifier keeps the newest one it saw
 * and checks later logs against it (consistency, §2.1.4) and single entries (inclusion, §2.1.3).
 */
import { sign } from "node:crypto";
import { compactVerify, importJWK, type JWK } from "jose";
import { TpmTrustError } from "../errors.js";
import { verifyConsistency, verifyInclusion } from "../crypto/merkle.js";
import { type AuditAnchor, type AuditVerification, type StoredCheckpoint, type Store, type TreeHead, canonicalJson, entryLeafHash } from "../store/index.js";
import { TOKEN_ALG, type TokenConfig, signingKey } from "./tokens.js";

const TYP = "tpmtrust-audit-checkpoint";
const b64url = (s: string): string => Buffer.from(s).toString("base64url");
const unhex = (s: string): Buffer => Buffer.from(s, "hex");

/** A checkpoint as read from its JWS: the tree head, the log that signed it and its key id. */
export interface Checkpoint extends TreeHead {
  log: string;
  kid: string;
  signed: string;
}

/** Integrates the entries committed since the last checkpoint and signs a head over the tree (nothing new: undefined). */
export async function checkpointAudit(store: Store, cfg: TokenConfig, now: number): Promise<StoredCheckpoint | undefined> {
  const key = await signingKey(store, cfg, now);
  const header = b64url(JSON.stringify({ alg: TOKEN_ALG, kid: key.kid, typ: TYP }));
  return store.audit.checkpoint({
    at: now,
    sign: async (h) => {
      const input = `${header}.${b64url(canonicalJson({ log: cfg.issuer, treeSize: h.treeSize, rootHash: h.rootHash, at: h.at }))}`;
      // RFC 7518 §3.4: ES256 signatures are R ‖ S
      return { kid: key.kid, signed: `${input}.${sign("sha256", Buffer.from(input), { key: key.key, dsaEncoding: "ieee-p1363" }).toString("base64url")}` };
    },
  });
}

/** Reads a checkpoint's JWS without checking its signature; malformed: ERR_VALIDATION. */
export function parseCheckpoint(signed: string): Checkpoint {
  const bad = (why: string) => new TpmTrustError("ERR_VALIDATION", `not an audit checkpoint: ${why}`);
  const parts = signed.trim().split(".");
  if (parts.length !== 3) throw bad("expected a JWS in compact serialisation (three base64url parts)");
  let header: Record<string, unknown>;
  let p: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8")) as Record<string, unknown>;
    p = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    throw bad("header or payload is not JSON");
  }
  if (header.typ !== TYP || header.alg !== TOKEN_ALG || typeof header.kid !== "string") throw bad(`header must be {"alg":"${TOKEN_ALG}","kid":…,"typ":"${TYP}"}`);
  const { log, treeSize, rootHash, at } = p;
  if (typeof log !== "string" || !Number.isSafeInteger(treeSize) || (treeSize as number) < 0 || typeof rootHash !== "string" || !/^[0-9a-f]{64}$/.test(rootHash) || !Number.isSafeInteger(at)) {
    throw bad("payload must be {log, treeSize, rootHash (hex), at}");
  }
  return { log, treeSize: treeSize as number, rootHash, at: at as number, kid: header.kid, signed: parts.join(".") };
}

/** Whether one of the store's token signing keys (current or retired) signed the checkpoint. */
async function signedByService(store: Store, c: Checkpoint): Promise<boolean> {
  const k = await store.signingKeys.get(c.kid);
  if (!k) return false;
  try {
    await compactVerify(c.signed, await importJWK(k.publicJwk as JWK, TOKEN_ALG), { algorithms: [TOKEN_ALG] });
    return true;
  } catch {
    return false;
  }
}

export interface AuditReport extends AuditVerification {
  /** the newest stored checkpoint (keep it: pass it to a later verify as a checkpoint) */
  checkpoint: string | null;
  /** checkpoints given by the caller that the log was shown consistent with */
  kept: { treeSize: number; rootHash: string }[];
}

/**
 * Verifies the whole log (store.audit.verify), every stored checkpoint's signature, and each kept
 * checkpoint (signature, then RFC 9162 §2.1.4.2 consistency proof from it to the newest head).
 * A kept checkpoint that is malformed is ERR_VALIDATION; one that fails any check makes the report
 * not ok (problem "signature", "anchor" or "consistency").
 */
export async function verifyAudit(store: Store, o: { anchors?: readonly AuditAnchor[]; checkpoints?: readonly string[] } = {}): Promise<AuditReport> {
  const kept = (o.checkpoints ?? []).map(parseCheckpoint);
  const v = await store.audit.verify({ anchors: [...(o.anchors ?? []), ...kept.map((c) => ({ seq: c.treeSize, hash: c.rootHash }))] });
  const { stored, leaves, ...base } = v;
  const newest = stored.at(-1);
  const report = (r: Partial<AuditVerification>): AuditReport => ({ ...base, ...r, checkpoint: newest?.signed ?? null, kept: r.ok === false ? [] : kept.map((c) => ({ treeSize: c.treeSize, rootHash: c.rootHash })) });
  const fail = (problem: AuditVerification["problem"], reason: string): AuditReport => report({ ok: false, problem, reason, firstBadSeq: null });
  for (const c of kept) {
    if (!(await signedByService(store, c))) return fail("signature", `the kept checkpoint of ${c.treeSize} leaves is not signed by a key of this service (kid ${c.kid})`);
  }
  if (!base.ok) return report({});
  for (const s of stored) {
    const c = parseCheckpoint(s.signed);
    if (c.treeSize !== s.treeSize || c.rootHash !== s.rootHash || c.kid !== s.kid || !(await signedByService(store, c))) {
      return fail("signature", `the stored checkpoint of ${s.treeSize} leaves is not a head signed by this service`);
    }
  }
  const to = newest ?? { treeSize: base.treeSize, rootHash: base.rootHash };
  for (const c of kept) {
    if (c.treeSize > to.treeSize) continue; // the anchor check already compared it with the entries
    if (!verifyConsistency(c.treeSize, to.treeSize, unhex(c.rootHash), unhex(to.rootHash), leaves.consistencyProof(c.treeSize, to.treeSize))) {
      return fail("consistency", `no consistency proof from the kept checkpoint of ${c.treeSize} leaves to the head of ${to.treeSize}`);
    }
  }
  return report({});
}

/** The newest stored checkpoint, or the one of `treeSize` leaves. */
async function checkpointOf(store: Store, treeSize?: number): Promise<StoredCheckpoint> {
  const cp = treeSize === undefined ? (await store.audit.head()).checkpoint : (await store.audit.checkpoints({ treeSize }))[0];
  if (!cp) throw new TpmTrustError(treeSize === undefined ? "ERR_AUDIT_NOT_CHECKPOINTED" : "ERR_NOT_FOUND", treeSize === undefined ? "the audit log has no checkpoint yet" : `no checkpoint of ${treeSize} leaves`);
  return cp;
}

export interface InclusionProof {
  seq: number;
  leafIndex: number;
  leafHash: string;
  treeSize: number;
  rootHash: string;
  /** RFC 9162 §2.1.3.1 audit path, hex */
  proof: string[];
  checkpoint: string;
}

/** RFC 9162 §2.1.3: the entry `seq` is leaf `leafIndex` of the checkpointed tree (the newest, or of `treeSize` leaves). */
export async function proveInclusion(store: Store, seq: number, treeSize?: number): Promise<InclusionProof> {
  const e = await store.audit.get(seq);
  if (!e) throw new TpmTrustError("ERR_NOT_FOUND", `no audit entry ${seq}`);
  const cp = await checkpointOf(store, treeSize);
  if (e.leafIndex === null || e.leafIndex >= cp.treeSize) throw new TpmTrustError("ERR_AUDIT_NOT_CHECKPOINTED", `audit entry ${seq} is not in the checkpoint of ${cp.treeSize} leaves yet`);
  const leaves = await store.audit.leaves(cp.treeSize);
  const proof = leaves.inclusionProof(e.leafIndex, cp.treeSize);
  const leafHash = entryLeafHash({ ...e, details: canonicalJson(e.details) });
  if (!verifyInclusion(e.leafIndex, cp.treeSize, unhex(leafHash), proof, unhex(cp.rootHash))) {
    throw new TpmTrustError("ERR_AUDIT_CHAIN_BROKEN", `audit entry ${seq} is not in the checkpoint of ${cp.treeSize} leaves: run audit verify`);
  }
  return { seq, leafIndex: e.leafIndex, leafHash, treeSize: cp.treeSize, rootHash: cp.rootHash, proof: proof.map((b) => b.toString("hex")), checkpoint: cp.signed };
}

export interface ConsistencyProof {
  from: { treeSize: number; rootHash: string };
  to: { treeSize: number; rootHash: string; checkpoint: string };
  /** RFC 9162 §2.1.4.1, hex */
  proof: string[];
}

/** RFC 9162 §2.1.4: the tree of `from` leaves is a prefix of the checkpointed tree (the newest, or of `to` leaves). */
export async function proveConsistency(store: Store, from: number, to?: number): Promise<ConsistencyProof> {
  const cp = await checkpointOf(store, to);
  if (from > cp.treeSize) throw new TpmTrustError("ERR_VALIDATION", `the tree of ${from} leaves is larger than the checkpoint of ${cp.treeSize}`);
  const leaves = await store.audit.leaves(cp.treeSize);
  const proof = leaves.consistencyProof(from, cp.treeSize);
  const fromRoot = leaves.root(0, from);
  if (!verifyConsistency(from, cp.treeSize, fromRoot, unhex(cp.rootHash), proof)) {
    throw new TpmTrustError("ERR_AUDIT_CHAIN_BROKEN", `the checkpoint of ${cp.treeSize} leaves does not match its entries: run audit verify`);
  }
  return { from: { treeSize: from, rootHash: fromRoot.toString("hex") }, to: { treeSize: cp.treeSize, rootHash: cp.rootHash, checkpoint: cp.signed }, proof: proof.map((b) => b.toString("hex")) };
}
