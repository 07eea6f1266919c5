#!/usr/bin/env node
// Runs the build in dist/ when it is fresh, otherwise the TypeScript sources through tsx (bin/load.js). pino flushes
// the log lines still queued when it exits (its exit hook), so nothing is lost.
//
// libuv's pool (4 threads unless told) runs the store's fdatasyncs and the renames and directory syncs beside them: with
// 4, a batch of 64 copies reached a journalled ext4 4 fsyncs at a time, a journal commit each, and the renames of the
// batch before waited behind them. With 64, a batch's syncs share a commit (scenario b on a journalled ext4, medians:
// 0.71 s against 1.07 s). Read by libuv when the pool first starts: set before anything of dockd runs.
process.env.UV_THREADPOOL_SIZE ??= '64';
require('./load.js').runEntry('daemon/main.ts', { exitAtOnce: true });
