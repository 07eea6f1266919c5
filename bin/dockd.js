#!/usr/bin/env node
// Runs the build in dist/ when it is fresh, otherwise the TypeScript sources through tsx (bin/load.js).
const { loadEntry } = require('./load.js');

process.exitCode = 13; // main() never settled (what an unsettled top-level await exits with): a failure to systemd
loadEntry('daemon/main.ts')
  .then(({ main }) => main(process.argv.slice(2)))
  // Exit with main's code even if a handle is still open (a failed start-up must never leave half a daemon running).
  // pino flushes the log lines still queued on exit (its exit hook), so nothing is lost.
  .then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
