/**
 * Progress bars for long CLI work (bulk imports, learning from many logs): on standard error, and
 * only when it is a terminal, so pipes, files and --json output never see them.
 */
import cliProgress from "cli-progress";

export interface Progress {
  /** one more item done; `item` names it on the bar */
  tick(item?: string): void;
  stop(): void;
}

const NONE: Progress = { tick: () => undefined, stop: () => undefined };

/** A bar for `total` items labelled `what`; a no-op off a TTY or for fewer than `min` items. */
export function progress(what: string, total: number, o: { min?: number; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = o.stream ?? process.stderr;
  if (!stream.isTTY || total < (o.min ?? 2)) return NONE;
  const bar = new cliProgress.SingleBar(
    { stream, format: `${what} [{bar}] {value}/{total} {item}`, hideCursor: true, clearOnComplete: false, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { item: "" });
  return {
    tick: (item = "") => bar.increment(1, { item: item.length > 40 ? `…${item.slice(-39)}` : item }),
    stop: () => bar.stop(),
  };
}

/** Maps `items` through `fn` with a progress bar. */
export async function withProgress<T, R>(what: string, items: readonly T[], name: (t: T) => string, fn: (t: T) => R | Promise<R>): Promise<R[]> {
  const p = progress(what, items.length);
  try {
    const out: R[] = [];
    for (const t of items) {
      out.push(await fn(t));
      p.tick(name(t));
    }
    return out;
  } finally {
    p.stop();
  }
}
