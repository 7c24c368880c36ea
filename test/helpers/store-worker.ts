/**
 * A second service instance for concurrency tests, in its own process:
 *   store-worker.ts URL START_AT open
 *   store-worker.ts URL START_AT consume PURPOSE HEX,HEX,…   -> {"won":[hex…],"codes":{code:n}}
 *   store-worker.ts URL START_AT append N ACTOR               -> {"seqs":[…]}
 * Each waits until the epoch-ms START_AT after opening, so two workers race for real.
 */
import { isTpmTrustError } from "../../src/errors.js";
import { openStore } from "../../src/store/index.js";

const [url, startAt, cmd, ...args] = process.argv.slice(2);
const store = await openStore(url);
const wait = Number(startAt) - Date.now();
if (wait > 0) await new Promise((r) => setTimeout(r, wait));
let result: unknown;
if (cmd === "open") {
  result = { schemaVersion: store.schemaVersion };
} else if (cmd === "consume") {
  const won: string[] = [];
  const codes: Record<string, number> = {};
  for (const value of args[1].split(",")) {
    try {
      await store.nonces.consume({ value: Buffer.from(value, "hex"), purpose: args[0] });
      won.push(value);
    } catch (e) {
      const code = isTpmTrustError(e) ? e.code : String(e);
      codes[code] = (codes[code] ?? 0) + 1;
    }
  }
  result = { won, codes };
} else if (cmd === "append") {
  const seqs: number[] = [];
  for (let i = 0; i < Number(args[0]); i++) seqs.push((await store.audit.append({ actor: args[1], action: "test.append", outcome: "success", details: { i } })).seq);
  result = { seqs };
} else {
  throw new Error(`unknown worker command ${cmd}`);
}
await store.close();
process.stdout.write(JSON.stringify(result));
