import { createRequire } from "node:module";
import type * as Commander from "commander";

/**
 * commander's classes, loaded through require: commander is CommonJS, and importing it as an ES
 * module adds about half again to its load time (the module wrapper and the scan of its exports),
 * which every one-shot command pays.
 */
const commander = createRequire(import.meta.url)("commander") as typeof Commander;
export const { Command, Option, CommanderError } = commander;
export type Command = Commander.Command;
export type Option = Commander.Option;
