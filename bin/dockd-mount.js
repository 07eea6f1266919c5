#!/usr/bin/env node
// The mount helper: mounts recorder volumes for dockd, which then runs without any capability (systemd/dockd-mount.service).
require('./load.js').runEntry('drivers/mounts/mountHelperMain.ts');
