#!/usr/bin/env node
// Runs the TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../daemon/main.ts');
process.exitCode = await main(process.argv.slice(2));
