#!/usr/bin/env node
require('./load.js').runEntry('daemon/cli/dockctl.ts');
