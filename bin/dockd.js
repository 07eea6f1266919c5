#!/usr/bin/env node
// Runs the build in dist/ when it is fresh, otherwise the TypeScript sources through tsx (bin/load.js). pino flushes
// the log lines still queued when it exits (its exit hook), so nothing is lost.
require('./load.js').runEntry('daemon/main.ts', { exitAtOnce: true });
