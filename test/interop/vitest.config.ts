import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:interop`: dockd against the brokers and tus servers HQs run (RabbitMQ's MQTT plugin, @tus/server 1,
// tus-node-server 0.9, beside mosquitto and @tus/server 2). Files are *.interop.ts, so `npm test` never picks them up.
export default defineConfig({
  root: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..'),
  test: {
    include: ['test/interop/**/*.interop.ts'],
    testTimeout: 300_000,
    // A RabbitMQ node takes some 20 s to start on an idle machine, and is bounded at 150 s.
    hookTimeout: 240_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
