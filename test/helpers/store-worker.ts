/**
 * A second service instance for concurrency tests, in its own process. Opens the store, prints
 * "ready", waits for stdin to close, does its work and prints one JSON object:
 *   store-worker.ts URL open                       -> {"schemaVersion":n}
 *   store-worker.ts URL consume PURPOSE HEX,HEX,…  -> {"won":[hex…],"codes":{code:n}}
 *   store-worker.ts URL append N ACTOR             -> {"seqs":[…]}
 */
import { once } from "node:events";
import { isTpmTrustError } from "../../src/errors.js";
import { openStore } from "../../src/store/index.js";

const [url, cmd, ...args] = process.argv.slice(2);
// "open" races the opening itself (migrations); the others open first and race their work.
let store = cmd === "open" ? undefined : await openStore(url);
process.stdout.write("ready\n");
process.stdin.resume();
await once(process.stdin, "end");
store ??= await openStore(url);
let result: unknown;
if (cmd === "open") {
  result = { schemaVersion: store.schemaVersion };
} else if (cmd === "consume") {
  const won: string[] = [];
  const codes: Record<string, number> = {};
  for (const value of args[1].split(",")) {
    try {
      await store.nonces.consume({ at: Date.now(), value: Buffer.from(value, "hex"), purpose: args[0] });
      won.push(value);
    } catch (e) {
      const code = isTpmTrustError(e) ? e.code : String(e);
      codes[code] = (codes[code] ?? 0) + 1;
    }
  }
  result = { won, codes };
} else if (cmd === "append") {
  const seqs: number[] = [];
  for (let i = 0; i < Number(args[0]); i++) seqs.push((await store.audit.append({ at: Date.now(), actor: args[1], action: "test.append", outcome: "success", details: { i } })).seq);
  result = { seqs };
} else {
  throw new Error(`unknown worker command ${cmd}`);
}
await store.close();
process.stdout.write(JSON.stringify(result));
