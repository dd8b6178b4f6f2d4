#!/usr/bin/env node
// The `virtsync` bin: registers tsx so the TypeScript sources run as they are, then starts the CLI.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../tools/cli/main.ts', import.meta.url).href);
