#!/usr/bin/env node
// The mount helper: mounts recorder volumes for dockd, which then runs without any capability (systemd/dockd-mount.service).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../drivers/mounts/mountHelperMain.ts');
process.exitCode = await main(process.argv.slice(2));
