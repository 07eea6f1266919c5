/**
 * dockctl's bundle (scripts/build.mjs; `npm test` builds before it runs) stays ASCII: one character outside ASCII, in a
 * comment or a regular expression that esbuild leaves as written, makes V8 hold the whole source as a two-byte string,
 * ≈ 8 ms more at every `dockctl` start on the development machine. Write such a character as \uXXXX in a regular
 * expression (comments are dropped from this bundle).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';

describe("dockctl's bundle", () => {
  it('is ASCII only', () => {
    const file = path.join(PACKAGE_ROOT, 'dist', 'bundle', 'dockctl.cjs');
    const code = readFileSync(file, 'utf8'); // missing: run `npm run build`
    const at = code.search(/[\u0080-\uffff]/);
    expect(at === -1 ? null : code.slice(Math.max(0, at - 80), at + 20)).toBeNull();
    expect(code).toMatch(/\/\/# dockd-bundle-sha256=[0-9a-f]{64}\n$/);
  });
});
