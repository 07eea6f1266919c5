#!/usr/bin/env node
// The mount helper: mounts recorder volumes for dockd, which then runs without any capability (systemd/dockd-mount.service).
const { loadEntry } = require('./load.js');

process.exitCode = 13; // main() never settled (what an unsettled top-level await exits with): a failure to systemd
loadEntry('drivers/mounts/mountHelperMain.ts')
  .then(({ main }) => main(process.argv.slice(2)))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
