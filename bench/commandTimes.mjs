// Times commands as a shell would run them, interleaved round by round: node bench/commandTimes.mjs ROUNDS JSON, where
// JSON is a list of argv arrays; prints {wall: number[][], cpu: number[][]} (milliseconds, one list per command).
// A small process of its own: spawned from the bench's own process (hundreds of MB after building a catalog), each
// command took ≈ 20 ms longer to start (fork copies the parent's page tables), `node -e 0` included.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const rounds = Number(process.argv[2]);
const commands = JSON.parse(process.argv[3]);
const timeFile = path.join(os.tmpdir(), `dockd-command-times-${process.pid}`);
const wall = commands.map(() => []);
const cpu = commands.map(() => []);
for (let i = 0; i < rounds; i++)
  for (const [k, argv] of commands.entries()) {
    const t0 = performance.now();
    // /usr/bin/time for the command's CPU (user + system): on a shared machine, steadier than its wall time.
    const r = spawnSync('/usr/bin/time', ['-o', timeFile, '-f', '%U %S', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
    wall[k].push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr}`);
    const [user, sys] = readFileSync(timeFile, 'utf8').trim().split(/\s+/).map(Number);
    cpu[k].push((user + sys) * 1000);
  }
rmSync(timeFile, { force: true });
process.stdout.write(JSON.stringify({ wall, cpu }));
