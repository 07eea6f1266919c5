/**
 * File names on a recorder are bytes: cheap FAT firmware writes names that are not UTF-8, and ext4 allows control
 * characters. dockd takes such recordings all the same; people see the name escaped, and the catalog and HQ get the
 * raw bytes too (hex).
 */

const strict = new TextDecoder('utf-8', { fatal: true });

const hexByte = (b: number) => `\\x${b.toString(16).padStart(2, '0')}`;

function isControl(cp: number): boolean {
  return cp < 0x20 || cp === 0x7f || (cp >= 0x80 && cp < 0xa0);
}

/** Length of the UTF-8 sequence a lead byte starts (0: not a lead byte). */
function seqLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/**
 * A name for people: the bytes decoded as UTF-8, with every byte that is not part of a valid sequence and every
 * control character written `\xNN`. When anything is escaped, a backslash is written `\x5c` too, so that two
 * different byte strings never show the same text.
 */
export function escapeName(raw: Buffer): { text: string; escaped: boolean } {
  let plain: string | null = null;
  try {
    plain = strict.decode(raw);
  } catch {
    plain = null;
  }
  if (plain !== null && ![...plain].some((c) => isControl(c.codePointAt(0)!))) return { text: plain, escaped: false };
  let out = '';
  let i = 0;
  while (i < raw.length) {
    const n = seqLength(raw[i]);
    let ch: string | null = null;
    if (n && i + n <= raw.length) {
      try {
        ch = strict.decode(raw.subarray(i, i + n));
      } catch {
        ch = null;
      }
    }
    if (ch === null) {
      out += hexByte(raw[i]);
      i++;
      continue;
    }
    const cp = ch.codePointAt(0)!;
    out += isControl(cp) || ch === '\\' ? [...Buffer.from(ch)].map(hexByte).join('') : ch;
    i += n;
  }
  return { text: out, escaped: true };
}
