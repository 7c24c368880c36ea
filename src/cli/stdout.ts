import { writeSync } from "node:fs";

let viaStream = false;

/**
 * Writes `text` to stdout with fs.writeSync, which spares a one-shot command process.stdout: setting
 * up that stream (a socket over a pipe, a tty) is a millisecond or more of its start-up (npm run
 * bench -- startup). Should fd 1 not take it all (EAGAIN from a full non-blocking pipe, or any
 * error), the rest and every later write go through process.stdout, which handles that as ever.
 * Only for output nothing went before through process.stdout in the same run: a write to it may be
 * asynchronous (a pipe on macOS), and would then land after this one.
 */
export function writeStdout(text: string): void {
  const bytes = Buffer.from(text);
  let at = 0;
  if (!viaStream) {
    try {
      while (at < bytes.length) at += writeSync(1, bytes, at);
      return;
    } catch {
      viaStream = true;
    }
  }
  process.stdout.write(bytes.subarray(at));
}
