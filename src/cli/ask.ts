import { createInterface } from "node:readline/promises";

/**
 * Asks `question` on a terminal and resolves true only for y/yes. Without a terminal (scripts, pipes)
 * or with `yes`, nothing is asked: the command goes ahead, as it always did.
 */
export async function confirmOnTerminal(question: string, yes = false): Promise<boolean> {
  if (yes || !process.stdin.isTTY || !process.stderr.isTTY) return true;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^\s*y(es)?\s*$/i.test(await rl.question(`${question} [y/N] `));
  } finally {
    rl.close();
  }
}
