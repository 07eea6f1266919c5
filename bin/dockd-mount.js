#!/usr/bin/env node
// The mount helper: mounts recorder volumes for dockd, which then runs without any capability (systemd/dockd-mount.service).
const { loadEntry } = require('./load.js');

loadEntry('drivers/mounts/mountHelperMain.ts')
  .then(({ main }) => main(process.argv.slice(2)))
  .then((code) => {
    process.exitCode = code;
  });
