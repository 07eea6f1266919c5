import { describe, expect, it } from 'vitest';
import { table } from '../../daemon/cli/format.ts';

describe('table', () => {
  it('pads each column to its widest cell (characters, not bytes)', () => {
    expect(
      table([
        ['ID', 'NAME'],
        ['1', '张三'],
        ['12345', 'b'],
      ]),
    ).toBe('ID     NAME\n1      张三\n12345  b');
  });

  it('counts a character outside the BMP once, and a lone surrogate as one (as [...s] does)', () => {
    const cells = ['𠀀x', 'a\ud800', '\udc00\ud800b', '𠀀𠀀', ''];
    const rows = [['NAME', 'END'], ...cells.map((c) => [c, '|'])];
    const widest = Math.max(...cells.map((c) => [...c].length), 4);
    for (const [i, line] of table(rows).split('\n').entries())
      expect([...line].length, `row ${i}`).toBe(widest + 2 + (i === 0 ? 3 : 1));
  });

  it('lays out more rows than a spread argument list can hold (a catalog of 1,000,000 recordings)', () => {
    const rows = [['ID', 'STATE'], ...Array.from({ length: 300_000 }, (_, i) => [String(i), 'archived'])];
    const lines = table(rows).split('\n');
    expect(lines).toHaveLength(300_001);
    expect(lines[1]).toBe('0       archived');
    expect(lines.at(-1)).toBe('299999  archived');
  });
});
