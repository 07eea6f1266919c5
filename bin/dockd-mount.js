#!/usr/bin/env node
// The mount helper: mounts recorder volumes for dockd, which then runs without any capability (systemd/dockd-mount.service).
import { loadEntry } from './load.js';

const { main } = await loadEntry('drivers/mounts/mountHelperMain.ts');
process.exitCode = await main(process.argv.slice(2));
