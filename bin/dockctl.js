#!/usr/bin/env node
// `dockctl status` runs from an entry of its own, whose bundle is half of dockctl's (daemon/cli/statusEntry.ts).
const argv = process.argv.slice(2);
let i = 0;
while (argv[i] === '--config' || argv[i]?.startsWith('--config=')) i += argv[i] === '--config' ? 2 : 1;
require('./load.js').runEntry(argv[i] === 'status' ? 'daemon/cli/statusEntry.ts' : 'daemon/cli/dockctl.ts');
