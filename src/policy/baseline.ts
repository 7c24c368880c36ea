import { TpmTrustError } from "../errors.js";
import { extendsPcr, interpretBootChain, type BootRole, type EventLog, type Interpretation, type TcgEvent, type ReplayedEventLog } from "../verify/eventlog/index.js";
import { describeEvent, eventKey, meaningOfChange } from "./events.js";
import { DIGESTS, NAME, parseDocument, validate, type Schema } from "./schema.js";

/**
 * A TPM baseline for a hardware class (the Host Guardian Service's "TPM baseline"): per PCR, the
 * sequence of events reference hosts measured, each either fixed ("exact" digests) or allowed to vary
 * ("any", e.g. boot counters). Learned from one or more reference logs; a PCR whose reference logs
 * have different event sequences keeps each sequence as a variant.
 */
export const BASELINE_VERSION = 1;
export const BASELINE_SCHEMA_ID = "https://tpmtrust.dev/schemas/baseline-1.json";

export interface BaselineEvent {
  type: string;
  key: string;
  description: string;
  match: "exact" | "any";
  /** Digest per bank; present when match is "exact". */
  digests?: Record<string, string>;
}

export interface Baseline {
  $schema: typeof BASELINE_SCHEMA_ID;
  kind: "tpmtrust.baseline";
  version: typeof BASELINE_VERSION;
  name: string;
  learnedFrom: number;
  banks: string[];
  pcrs: Record<string, { variants: BaselineEvent[][] }>;
}

const PCR_KEY = "^(1?[0-9]|2[0-3])$";
const BASELINE_EVENT: Schema = {
  type: "object",
  required: ["type", "key", "description", "match"],
  additionalProperties: false,
  properties: {
    type: { type: "string", maxLength: 64 },
    key: { type: "string", maxLength: 512 },
    description: { type: "string", maxLength: 512 },
    match: { enum: ["exact", "any"] },
    digests: DIGESTS,
  },
};

export const BASELINE_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: BASELINE_SCHEMA_ID,
  title: "tpmtrust TPM baseline",
  type: "object",
  required: ["$schema", "kind", "version", "name", "learnedFrom", "banks", "pcrs"],
  additionalProperties: false,
  properties: {
    $schema: { const: BASELINE_SCHEMA_ID },
    kind: { const: "tpmtrust.baseline" },
    version: { type: "integer" },
    name: NAME,
    learnedFrom: { type: "integer", minimum: 1 },
    banks: { type: "array", minItems: 1, items: { type: "string", pattern: "^[a-z0-9_]{2,16}$" } },
    pcrs: {
      type: "object",
      additionalProperties: false,
      patternProperties: {
        [PCR_KEY]: {
          type: "object",
          required: ["variants"],
          additionalProperties: false,
          properties: { variants: { type: "array", minItems: 1, items: { type: "array", items: BASELINE_EVENT } } },
        },
      },
    },
  },
};

/** Parses "0-7", "0,2,4-7" into PCR indices 0..23. */
export function parsePcrList(spec: string): number[] {
  const out = new Set<number>();
  for (const part of spec.split(",").map((s) => s.trim())) {
    const m = /^(\d{1,2})(?:-(\d{1,2}))?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo > hi || hi > 23) throw new TpmTrustError("ERR_USAGE", `PCR list "${spec}": "${part}" is not a PCR or range within 0-23`);
    for (let p = lo; p <= hi; p++) out.add(p);
  }
  return [...out].sort((a, b) => a - b);
}

const hexDigests = (ev: TcgEvent, banks: string[]) => Object.fromEntries(banks.filter((b) => ev.digests[b]).map((b) => [b, ev.digests[b].toString("hex")]));

/** Learns a baseline from reference logs (trusted by the operator who picked them). */
export function learnBaseline(name: string, logs: EventLog[], pcrs: number[]): Baseline {
  validate(NAME, name, "baseline name");
  if (!logs.length) throw new TpmTrustError("ERR_USAGE", "a baseline is learned from at least one log");
  const banks = logs[0].algorithms.map((a) => a.bank).filter((b) => logs.every((l) => l.algorithms.some((a) => a.bank === b)));
  if (!banks.length) throw new TpmTrustError("ERR_USAGE", "the reference logs have no digest bank in common");
  const out: Baseline["pcrs"] = {};
  for (const pcr of pcrs) {
    // a selected PCR without reference events stays in the baseline as an empty sequence: events there are unexpected
    const perLog = logs.map((l) => l.events.filter((e) => e.pcr === pcr && extendsPcr(e)));
    const groups = new Map<string, TcgEvent[][]>();
    for (const evs of perLog) {
      const shape = evs.map(eventKey).join("\n");
      groups.set(shape, [...(groups.get(shape) ?? []), evs]);
    }
    out[pcr] = {
      variants: [...groups.values()].map((group) =>
        group[0].map((ev, i) => {
          const digests = hexDigests(ev, banks);
          const exact = group.every((evs) => banks.every((b) => evs[i].digests[b]?.toString("hex") === digests[b]));
          return {
            type: ev.typeName,
            key: eventKey(ev),
            description: describeEvent(ev),
            match: exact ? "exact" : "any",
            ...(exact ? { digests } : {}),
          } satisfies BaselineEvent;
        }),
      ),
    };
  }
  return { $schema: BASELINE_SCHEMA_ID, kind: "tpmtrust.baseline", version: BASELINE_VERSION, name, learnedFrom: logs.length, banks, pcrs: out };
}

/** Validates a baseline document (from a file or the API). */
export function parseBaseline(doc: unknown): Baseline {
  return parseDocument<Baseline>(BASELINE_SCHEMA, BASELINE_VERSION, "baseline", doc);
}

export type DiffKind = "differs" | "missing" | "unexpected" | "pcr-not-verified" | "no-common-bank" | "ima-entry";

/** One human-readable difference between a host's verified log and a policy. */
export interface PolicyDiff {
  pcr: number;
  kind: DiffKind;
  /** Event type name (expected or actual). */
  type?: string;
  /** Record number of the host's event, when there is one. */
  record?: number;
  description: string;
  expected?: Record<string, string> | "any";
  actual?: Record<string, string>;
  /** What the difference means, e.g. "db changed", "bootloader digest differs", "Secure Boot disabled". */
  meaning: string;
  /** The stable code of a failing IMA entry (ERR_IMA_DIGEST_NOT_ALLOWED, …). */
  code?: string;
}

export interface PolicyResult {
  pass: boolean;
  policy: string;
  diffs: PolicyDiff[];
}

/** Evaluates a verified log against a baseline: pass, or every difference with its meaning. */
export function evaluateBaseline(baseline: Baseline, verified: ReplayedEventLog): PolicyResult {
  const roles = new Map<number, BootRole>();
  for (const img of interpretBootChain(verified.events).applications) roles.set(img.record, img.role);
  const diffs: PolicyDiff[] = [];
  for (const [key, { variants }] of Object.entries(baseline.pcrs)) {
    const pcr = Number(key);
    const explained = verified.explained.filter((e) => e.pcr === pcr);
    if (!explained.length) {
      diffs.push({ pcr, kind: "pcr-not-verified", description: `PCR ${pcr}`, meaning: `PCR ${pcr} was not verified by the quote, so its events cannot be judged` });
      continue;
    }
    const banks = baseline.banks.filter((b) => explained.some((e) => e.bank === b));
    if (!banks.length) {
      diffs.push({ pcr, kind: "no-common-bank", description: `PCR ${pcr}`, meaning: `PCR ${pcr} was verified only in ${explained.map((e) => e.bank).join(", ")}, the baseline has ${baseline.banks.join(", ")}` });
      continue;
    }
    const actual = verified.events.filter((e) => e.pcr === pcr);
    let best: PolicyDiff[] | undefined;
    for (const variant of variants) {
      const d = compareSequence(pcr, variant, actual, banks, roles);
      if (!best || d.length < best.length) best = d;
      if (!d.length) break;
    }
    diffs.push(...best!);
  }
  return { pass: diffs.length === 0, policy: baseline.name, diffs };
}

/** Longest common subsequence of keys lines the host's events up with the baseline's; the rest is missing or unexpected. */
function compareSequence(pcr: number, expected: BaselineEvent[], actual: TcgEvent[], banks: string[], roles: Map<number, BootRole>): PolicyDiff[] {
  const keys = actual.map(eventKey);
  const pairs = align(
    expected.map((e) => e.key),
    keys,
  );
  const diffs: PolicyDiff[] = [];
  let i = 0;
  let j = 0;
  const missing = (e: BaselineEvent) =>
    diffs.push({ pcr, kind: "missing", type: e.type, description: e.description, expected: e.digests ?? "any", meaning: `expected ${e.description} is missing` });
  const unexpected = (ev: TcgEvent) =>
    diffs.push({ pcr, kind: "unexpected", type: ev.typeName, record: ev.index, description: describeEvent(ev), actual: hexDigests(ev, banks), meaning: `unexpected ${describeEvent(ev)}` });
  for (const [ei, aj] of [...pairs, [expected.length, actual.length] as const]) {
    while (i < ei) missing(expected[i++]);
    while (j < aj) unexpected(actual[j++]);
    if (ei === expected.length) break;
    const e = expected[ei];
    const ev = actual[aj];
    const same = banks.filter((b) => e.digests?.[b] && ev.digests[b]);
    if (e.match === "exact" && (!same.length || same.some((b) => e.digests![b] !== ev.digests[b].toString("hex")))) {
      const expectedIn = Object.fromEntries(Object.entries(e.digests!).filter(([b]) => ev.digests[b]));
      diffs.push({ pcr, kind: "differs", type: ev.typeName, record: ev.index, description: describeEvent(ev), expected: expectedIn, actual: hexDigests(ev, banks), meaning: meaningOfChange(ev, roles.get(ev.index)) });
    }
    i = ei + 1;
    j = aj + 1;
  }
  return diffs;
}

/** Index pairs of a longest common subsequence (bounded: beyond 4M cells, align by position). */
function align(a: string[], b: string[]): [number, number][] {
  if (a.length * b.length > 4_000_000) {
    const n = Math.min(a.length, b.length);
    return Array.from({ length: n }, (_, k) => [k, k]).filter(([x, y]) => a[x] === b[y]) as [number, number][];
  }
  const w = b.length + 1;
  const t = new Uint32Array((a.length + 1) * w);
  for (let x = a.length - 1; x >= 0; x--) {
    for (let y = b.length - 1; y >= 0; y--) {
      t[x * w + y] = a[x] === b[y] ? t[(x + 1) * w + y + 1] + 1 : Math.max(t[(x + 1) * w + y], t[x * w + y + 1]);
    }
  }
  const out: [number, number][] = [];
  let x = 0;
  let y = 0;
  while (x < a.length && y < b.length) {
    if (a[x] === b[y]) out.push([x++, y++]);
    else if (t[(x + 1) * w + y] >= t[x * w + y + 1]) x++;
    else y++;
  }
  return out;
}

/** Plain-text rendering of a policy result, one line per difference. */
export function formatResult(r: PolicyResult): string {
  if (r.pass) return `PASS ${r.policy}\n`;
  const lines = [`FAIL ${r.policy}: ${r.diffs.length} difference${r.diffs.length > 1 ? "s" : ""}`];
  for (const d of r.diffs) {
    lines.push(`  PCR ${d.pcr}${d.record !== undefined ? ` record ${d.record}` : ""}${d.type ? ` ${d.type}` : ""}: ${d.meaning}`);
    if (d.kind === "differs" || d.kind === "missing") lines.push(`    expected ${d.expected === "any" ? "any digest" : fmt(d.expected)}`);
    if (d.actual) lines.push(`    actual   ${fmt(d.actual)}`);
    if (d.kind !== "pcr-not-verified" && d.kind !== "no-common-bank") lines.push(`    event    ${d.description}`);
  }
  return lines.join("\n") + "\n";
}

const fmt = (d?: Record<string, string>) => (d ? Object.entries(d).map(([b, h]) => `${b}:${h}`).join(" ") : "-");

/**
 * What makes a reference log unfit to learn a baseline from, as HGS checks before it accepts a TCG
 * log (refused unless -SkipValidation): Secure Boot off, boot or kernel debugging on, test signing.
 * Read from the log's (bound) events; a fact the log does not state is not reported.
 */
export function referenceProblems(i: Pick<Interpretation, "secureBoot" | "windows">): string[] {
  const out: string[] = [];
  if (i.secureBoot.enabled === false) out.push("Secure Boot is off");
  if (i.windows?.bootDebugging) out.push("boot debugging is on");
  if (i.windows?.kernelDebug) out.push("kernel debugging is on");
  if (i.windows?.testSigning) out.push("test signing is on");
  return out;
}
