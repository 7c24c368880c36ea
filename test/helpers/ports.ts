import { createServer, type Server } from "node:net";

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(undefined));
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

function close(s: Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

/**
 * Finds `count` consecutive free TCP ports on 127.0.0.1 and returns the first. Another process may
 * still take them before the caller binds: callers retry on a bind failure.
 */
export async function freePorts(count = 1): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await listen(0);
    if (!first) continue;
    const base = (first.address() as { port: number }).port;
    const held = [first];
    for (let i = 1; i < count; i++) {
      const s = base + i <= 0xffff ? await listen(base + i) : undefined;
      if (!s) break;
      held.push(s);
    }
    await Promise.all(held.map(close));
    if (held.length === count) return base;
  }
  throw new Error(`no ${count} consecutive free ports on 127.0.0.1`);
}
