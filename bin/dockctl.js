#!/usr/bin/env node
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../daemon/cli/dockctl.ts');
process.exitCode = await main(process.argv.slice(2));
