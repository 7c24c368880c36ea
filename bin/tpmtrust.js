#!/usr/bin/env node
// Loads the TypeScript sources through tsx, so the CLI runs without a build step.
import { register } from "tsx/esm/api";
register();
await import("../src/cli/main.ts");
