// A node:test reporter for scripts/test.mjs: one line when a test begins running ("+ name") and
// one when it has run ("- name"), so a file stopped for running too long names the tests it was in.
export default async function* running(source) {
  for await (const event of source) {
    if (event.type === "test:dequeue") yield `+ ${event.data.name}\n`;
    else if (event.type === "test:complete") yield `- ${event.data.name}\n`;
  }
}
