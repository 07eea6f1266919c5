#!/usr/bin/env node
import { loadEntry } from './load.js';

const { main } = await loadEntry('daemon/cli/dockctl.ts');
process.exitCode = await main(process.argv.slice(2));
