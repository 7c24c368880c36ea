/** A quote verification thread (see quote-verifier.ts): answers each job it is posted. */
import { parentPort } from "node:worker_threads";
import { answerQuoteJob, type QuoteJob } from "./quote-verifier.js";

parentPort?.on("message", ({ id, job }: { id: number; job: QuoteJob }) => {
  parentPort!.postMessage({ id, answer: answerQuoteJob(job) });
});
