/**
 * The quote checks of an attestation (verifyQuoteSet: the AK's key imported, each signature
 * verified, the PCR digest recomputed) on worker threads while the service's event loop, which
 * also runs every database statement, is the bottleneck. They are most of an attestation's CPU that
 * needs nothing from the store. Jobs carry bytes and plain values only; a job's answer is
 * verifyQuoteSet's, or the same typed error, whichever thread ran it.
 */
import { availableParallelism, cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { TpmTrustError, type ErrorCode } from "../errors.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { verifyQuoteSet, type QuotedPcrs, type Selection, type SignedQuote } from "../verify/attestation.js";

/** What verifyQuoteSet needs of one attestation, as a worker receives it. */
export interface QuoteJob {
  /** the bound AK's Name and marshalled TPMT_PUBLIC, as stored */
  akName: Uint8Array;
  akPublic: Uint8Array;
  quotes: SignedQuote[];
  nonce: Uint8Array;
  pcrs: PcrValues;
  required: Selection;
}

/** A job's answer across a thread: the result, or the typed error verifyQuoteSet threw. */
export type QuoteAnswer = { ok: QuotedPcrs } | { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } | { internal: string };

// Stored AK publics are immutable per Name: each is parsed (and its key imported, see
// src/crypto/keys.ts) once per thread while it is kept.
const AK_PUBLICS = 100_000;
const akPublics = new Map<string, TpmtPublic>();
function akPublic(name: Uint8Array, pub: Uint8Array): TpmtPublic {
  const key = Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("hex");
  let p = akPublics.get(key);
  if (!p) {
    p = decodeTpmtPublic(Buffer.from(pub.buffer, pub.byteOffset, pub.byteLength));
    if (akPublics.size >= AK_PUBLICS) akPublics.clear();
    akPublics.set(key, p);
  }
  return p;
}

/** Runs one job on this thread. */
function runQuoteJob(job: QuoteJob): QuotedPcrs {
  return verifyQuoteSet({ quotes: job.quotes, nonce: job.nonce, pcrs: job.pcrs }, akPublic(job.akName, job.akPublic), job.required);
}

/** Runs one job on this thread, its outcome as a value to post back. */
export function answerQuoteJob(job: QuoteJob): QuoteAnswer {
  try {
    return { ok: runQuoteJob(asBuffers(job)) };
  } catch (e) {
    if (e instanceof TpmTrustError) return { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } };
    return { internal: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * A structured clone's Uint8Arrays as Buffers again (the parsers and verifiers use Buffer's
 * methods), without copying; plain objects and arrays are walked, everything else kept.
 */
function asBuffers<T>(v: T): T {
  if (v instanceof Uint8Array) return (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)) as T;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = asBuffers(v[i]);
    return v;
  }
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = asBuffers(o[k]);
  }
  return v;
}

export interface QuoteVerifier {
  /** verifyQuoteSet's result for the job, or its typed error */
  verify(job: QuoteJob): Promise<QuotedPcrs>;
  /** stops the threads; jobs still running fail */
  close(): Promise<void>;
}

/** `serve --verify-threads` by default: the cores the event loop does not use, at most 4. */
export function defaultVerifyThreads(): number {
  return Math.min(4, availableParallelism() - 1);
}

export interface OffloadOptions {
  /**
   * "busy" (the default): a job goes to a thread only while this thread's event loop was busy
   * (over 80% of the last 100 ms) and the machine had a core to spare (a quarter of one idle over
   * that time); otherwise it runs here, where it costs less CPU in all (no messages). A thread
   * helps when the event loop is the bottleneck, and only takes CPU away from the rest (e.g. a
   * PostgreSQL on the same machine) when the cores are. "always": every job goes to a thread.
   */
  offload?: "busy" | "always";
  /** called per job with where it ran */
  onVerified?: (ranOn: "event-loop" | "worker") => void;
}

const WINDOW_MS = 100;
const BUSY_LOOP = 0.8;
const SPARE_CORE = 0.25;

/** Whether the event loop is busy and a core is spare, judged over windows of WINDOW_MS. */
function offloadWhenBusy(): () => boolean {
  const idleMs = () => cpus().reduce((t, c) => t + c.times.idle, 0);
  let loop = performance.eventLoopUtilization();
  let idle = idleMs();
  let at = performance.now();
  let offload = false;
  return () => {
    const now = performance.now();
    if (now - at < WINDOW_MS) return offload;
    const l = performance.eventLoopUtilization();
    const i = idleMs();
    offload = performance.eventLoopUtilization(l, loop).utilization > BUSY_LOOP && (i - idle) / (now - at) > SPARE_CORE;
    [loop, idle, at] = [l, i, now];
    return offload;
  };
}

/** Runs jobs on up to `threads` worker threads (see OffloadOptions), or always on the calling thread when `threads` is 0. */
export function quoteVerifier(threads: number, o: OffloadOptions = {}): QuoteVerifier {
  const here = async (job: QuoteJob) => {
    o.onVerified?.("event-loop");
    return runQuoteJob(job);
  };
  if (threads <= 0) return { verify: here, close: async () => undefined };
  const offload = o.offload === "always" ? () => true : offloadWhenBusy();
  const slots = Array.from({ length: threads }, () => startWorker());
  let closed = false;
  let nextId = 0;

  function startWorker(): Slot {
    const url = import.meta.url;
    // the compiled worker sits beside this module (dist/attest/ or dist/bundle/); run from the
    // sources (tsx), the thread registers tsx before it loads the worker's
    const worker = url.endsWith(".ts")
      ? new Worker(`import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((t) => { t.register(); return import(${JSON.stringify(new URL("./quote-worker.ts", url).href)}); });`, { eval: true })
      : new Worker(new URL("./quote-worker.js", url));
    const slot: Slot = { worker, pending: new Map(), answered: false };
    worker.unref();
    worker.on("message", ({ id, answer }: { id: number; answer: QuoteAnswer }) => {
      const p = slot.pending.get(id);
      if (!p) return;
      slot.pending.delete(id);
      slot.answered = true;
      if (slot.pending.size === 0) worker.unref();
      if ("ok" in answer) p.resolve(asBuffers(answer.ok));
      else if ("error" in answer) p.reject(new TpmTrustError(answer.error.code, answer.error.message, answer.error.details && asBuffers(answer.error.details)));
      else p.reject(new Error(`quote verification thread: ${answer.internal}`));
    });
    // a thread that fails or exits fails its jobs and is replaced (not once closed); one that
    // never answered (it could not load) is not: without threads, jobs run on the event loop
    const lost = (why: string) => {
      for (const p of slot.pending.values()) p.reject(new Error(closed ? CLOSED : `quote verification thread ${why}`));
      slot.pending.clear();
      const i = slots.indexOf(slot);
      if (i < 0) return;
      if (slot.answered) slots[i] = startWorker();
      else slots.splice(i, 1);
    };
    worker.on("error", (e) => lost(`failed: ${e.message}`));
    worker.on("exit", (code) => lost(`exited with ${code}`));
    return slot;
  }

  return {
    verify(job) {
      if (closed) return Promise.reject(new Error(CLOSED));
      if (slots.length === 0 || !offload()) return here(job);
      o.onVerified?.("worker");
      // one AK's jobs go to one thread, which keeps its parsed public and key
      const slot = slots[job.akName[job.akName.length - 1] % slots.length];
      const id = nextId++;
      return new Promise<QuotedPcrs>((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        slot.worker.ref();
        slot.worker.postMessage({ id, job });
      });
    },
    async close() {
      closed = true;
      const all = slots.splice(0);
      await Promise.all(all.map((s) => s.worker.terminate()));
    },
  };
}

const CLOSED = "quote verification threads are closed";

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (r: QuotedPcrs) => void; reject: (e: Error) => void }>;
  /** it has answered a job: it loaded */
  answered: boolean;
}
