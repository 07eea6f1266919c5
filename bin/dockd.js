#!/usr/bin/env node
// Runs the TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../daemon/main.ts');
// Exit with main's code even if a handle is still open (a failed start-up must never leave half a daemon running).
// Logs and stderr are written synchronously, so nothing is lost.
process.exit(await main(process.argv.slice(2)));
