/** Small text helpers for dockctl's terminal output. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function bar(done: number, total: number, width = 20): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const full = Math.round(frac * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.floor(frac * 100)).padStart(3)} %`;
}

/** Characters (code points) in `s`: what `[...s].length` counts, without building the array. */
function characters(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

export function table(rows: string[][]): string {
  if (!rows.length) return '';
  // A loop, not Math.max(...column): spreading 130,000 rows overflows the call stack.
  const widths = rows[0].map(() => 0);
  for (const r of rows) for (let c = 0; c < widths.length; c++) widths[c] = Math.max(widths[c], characters(r[c] ?? ''));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell + ' '.repeat(widths[c] - characters(cell)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
