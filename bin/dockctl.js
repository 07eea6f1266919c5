#!/usr/bin/env node
const { loadEntry } = require('./load.js');

loadEntry('daemon/cli/dockctl.ts')
  .then(({ main }) => main(process.argv.slice(2)))
  .then((code) => {
    process.exitCode = code;
  });
