#!/usr/bin/env node
const { loadEntry } = require('./load.js');

process.exitCode = 13; // main() never settled (what an unsettled top-level await exits with)
loadEntry('daemon/cli/dockctl.ts')
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
