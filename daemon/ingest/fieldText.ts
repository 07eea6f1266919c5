/**
 * Metadata typed by a person (case no., purpose, place, collector) goes to HQ as evidence and is shown on screens
 * and terminals: control characters (NUL, BEL, ESC, CR, LF, TAB, DEL, the C1 range) and the invisible direction
 * overrides (U+202A-202E, U+2066-2069) have no place in it; they could rewrite a terminal line or reorder what a
 * reader sees.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this forbids
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** Why `value` cannot be field `name`'s text (naming the first bad character), or null when it can. */
export function fieldTextProblem(name: string, value: string): string | null {
  const m = value.match(FORBIDDEN);
  if (!m) return null;
  const code = m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  return `${name} contains a control character (U+${code}); type it again without it`;
}
