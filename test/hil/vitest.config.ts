import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:hil`: the real dockd in a qemu guest with an emulated recorder on its USB bus (README, "Hardware in the
// loop"). Files are *.hil.ts, so `npm test` never picks them up. One guest at a time: TCG takes a core or two.
export default defineConfig({
  root: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..'),
  test: {
    include: ['test/hil/**/*.hil.ts'],
    testTimeout: 480_000,
    hookTimeout: 900_000,
    pool: 'forks',
    maxWorkers: 1,
    reporters: ['default'],
  },
});
