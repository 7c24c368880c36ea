// A node:test reporter for scripts/test.mjs: a line when a test is registered ("= name"), begins
// running ("+ name") and has run ("- name"), so the runner can tell a file that never finished
// loading from one stuck in a test, and name that test.
export default async function* running(source) {
  for await (const event of source) {
    if (event.type === "test:enqueue") yield `= ${event.data.name}\n`;
    else if (event.type === "test:dequeue") yield `+ ${event.data.name}\n`;
    else if (event.type === "test:complete") yield `- ${event.data.name}\n`;
  }
}
