import { readFileSync } from "node:fs";
import { type Command, Option } from "commander";
import type { AuditReport, InclusionProof } from "../../attest/audit-log.js";
import { TpmTrustError } from "../../errors.js";
import type { AuditAnchor, AuditEntry, StoredCheckpoint } from "../../store/index.js";
import { adminCommand, type AdminOptions } from "../admin-client.js";

/** A checkpoint's JWS, or a file holding one. */
function checkpointArg(v: string): string {
  if (/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(v.trim())) return v.trim();
  try {
    return readFileSync(v, "utf8").trim();
  } catch {
    throw new TpmTrustError("ERR_USAGE", `--checkpoint ${v}: neither a checkpoint (JWS) nor a readable file`);
  }
}

/** `SIZE:ROOT`, as `audit verify` prints a tree head. */
function anchor(v: string, prev: AuditAnchor[] = []): AuditAnchor[] {
  const m = /^([1-9][0-9]{0,14}):([0-9a-fA-F]{64})$/.exec(v);
  if (!m) throw new TpmTrustError("ERR_USAGE", `--anchor ${v}: expected SEQ:HASH (a tree head SIZE:ROOT printed by an earlier audit verify)`);
  return [...prev, { seq: Number(m[1]), hash: m[2].toLowerCase() }];
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** --since: ISO-8601, or a duration back from now (30m, 12h, 7d). */
export function sinceArg(v: string, now = Date.now()): number {
  const rel = /^([1-9][0-9]{0,8})([smhd])$/.exec(v);
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]];
  const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new TpmTrustError("ERR_USAGE", `--since ${v}: expected an ISO-8601 time (2026-01-31T12:00:00Z) or a duration back from now (30m, 12h, 7d)`);
  return t;
}

const OUTCOMES = { success: ["success"], failure: ["failure", "denied"], denied: ["denied"] } as const;

function line(e: AuditEntry): string {
  const d = (e.details ?? {}) as Record<string, unknown>;
  const why = [d.code, d.adcsEvent !== undefined ? `event ${d.adcsEvent}` : undefined, d.hresult !== undefined ? `hresult ${d.hresult}` : undefined].filter((x) => x !== undefined).join(" ");
  return [e.seq, new Date(e.at).toISOString(), e.actor, e.action, e.subject ?? "-", e.outcome, why || "-"].join("\t");
}

const seqArg = (v: string, what: string) => {
  if (!/^(0|[1-9][0-9]{0,14})$/.test(v)) throw new TpmTrustError("ERR_USAGE", `${what} ${v}: expected a number`);
  return Number(v);
};

/** `tpmtrust audit …` through /v1/audit (--server, else the local database). */
export function register(program: Command): void {
  const audit = program.command("audit").description("the audit log: a Merkle tree with signed checkpoints (docs/audit.md); on the running service with --server, else on the local database");
  adminCommand(audit, "list", "audit entries, newest first: every decision, denied requests, AD CS events 22/53 (ca.attestation.error, ca.request.denied)", {
    options: (c) =>
      c
        .option("--action <action>", "only this action (ca.request.denied), or a prefix ending in * (ca.*)")
        .addOption(new Option("--outcome <outcome>", "success, failure (failures and denials) or denied").choices(Object.keys(OUTCOMES)))
        .option("--since <time>", "at or after: ISO-8601, or a duration back from now (30m, 12h, 7d)")
        .option("--subject <subject>", "only this subject (host name, EK hash, …)")
        .option("--limit <n>", "at most this many (1-10000)", "100"),
    prepare: (_a, o: AdminOptions & { action?: string; outcome?: keyof typeof OUTCOMES; since?: string; subject?: string; limit: string }) => {
      if (!/^[1-9][0-9]{0,4}$/.test(o.limit) || Number(o.limit) > 10_000) throw new TpmTrustError("ERR_USAGE", `--limit ${o.limit}: expected 1 to 10000`);
    },
    mustExist: true,
    run: (c, _a, o) => {
      const since = o.since === undefined ? undefined : sinceArg(o.since);
      const q = new URLSearchParams({ order: "desc", limit: String(Math.min(Number(o.limit), 1000)) });
      if (o.action !== undefined) q.set("action", o.action);
      if (o.outcome) q.set("outcome", OUTCOMES[o.outcome].join(","));
      if (since !== undefined) q.set("since", String(Math.max(0, since)));
      if (o.subject !== undefined) q.set("subject", o.subject);
      return c.list<AuditEntry>(`/v1/audit?${q}`, { max: Number(o.limit), field: "entries" });
    },
    print: (entries) => entries.forEach((e) => process.stdout.write(line(e) + "\n")),
  });
  adminCommand(audit, "verify", "recompute the audit log: exit 0 intact, 1 broken (an entry edited, deleted or reordered, a checkpoint that does not match or is not signed by the service)", {
    options: (c) =>
      c
        .option("--anchor <size:root>", "a tree head seen earlier (or SEQ:HASH of a pre-v10 chain head), kept outside the database (repeatable): the log must still hold it", anchor)
        .option("--checkpoint <jws|file>", "a checkpoint kept outside the database, or a file holding one (repeatable): signature and consistency are checked", (v: string, prev: string[] = []) => [...prev, checkpointArg(v)]),
    mustExist: true,
    run: async (c, _a, o: AdminOptions & { anchor?: AuditAnchor[]; checkpoint?: string[] }) => {
      const v = await c.call<AuditReport>("POST", "/v1/audit/verify", { anchors: (o.anchor ?? []).map((a) => `${a.seq}:${a.hash}`), checkpoints: o.checkpoint ?? [] });
      return { code: v.ok ? "OK" : "ERR_AUDIT_CHAIN_BROKEN", database: c.where, ...v };
    },
    exit: (v) => (v.ok ? 0 : 1),
    print: (v) => {
      if (!v.ok) {
        throw new TpmTrustError("ERR_AUDIT_CHAIN_BROKEN", `audit log broken${v.firstBadSeq === null ? "" : ` at seq ${v.firstBadSeq}`} (${v.problem}): ${v.reason}; ${v.verified} entries before it verify`, {
          firstBadSeq: v.firstBadSeq,
          problem: v.problem,
        });
      }
      process.stdout.write(`audit log intact: ${v.verified} entries (${v.pending} not yet checkpointed), tree size ${v.treeSize}, root ${v.rootHash}, ${v.checkpoints} checkpoints\n`);
      if (v.checkpoint) {
        process.stdout.write(`checkpoint ${v.checkpoint}\n`);
        process.stderr.write(`hint: keep the checkpoint (or ${v.treeSize}:${v.rootHash}) outside the database and pass it as --checkpoint (--anchor) next time\n`);
      }
      return 0;
    },
  });
  adminCommand(audit, "prove <seq>", "RFC 9162 inclusion proof of one entry in the newest checkpoint: exit 0 when it verifies", {
    options: (c) => c.option("--tree-size <n>", "prove against the checkpoint of this many leaves instead"),
    prepare: ([seq], o: AdminOptions & { treeSize?: string }) => {
      seqArg(seq, "SEQ");
      if (o.treeSize !== undefined) seqArg(o.treeSize, "--tree-size");
    },
    mustExist: true,
    run: (c, [seq], o) => c.call<InclusionProof>("GET", `/v1/audit/${seqArg(seq, "SEQ")}/proof${o.treeSize === undefined ? "" : `?treeSize=${seqArg(o.treeSize, "--tree-size")}`}`),
    print: (p) => {
      process.stdout.write(`entry ${p.seq} is leaf ${p.leafIndex} (${p.leafHash}) of the tree of ${p.treeSize} leaves, root ${p.rootHash}\n`);
      for (const h of p.proof) process.stdout.write(`path ${h}\n`);
      process.stdout.write(`checkpoint ${p.checkpoint}\n`);
    },
  });
  adminCommand(audit, "checkpoint", "integrate the entries written since the last checkpoint and sign a new one now (tpmtrust serve does this every few seconds)", {
    mustExist: true,
    run: (c) => c.call<StoredCheckpoint | null>("POST", "/v1/audit/checkpoint"),
    print: (cp) => void process.stdout.write(cp ? `checkpoint ${cp.signed}\ntree size ${cp.treeSize}, root ${cp.rootHash}\n` : "the audit log is empty: no checkpoint\n"),
  });
}
