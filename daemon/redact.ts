import { SECRET_VALUES } from './config.ts';

/**
 * Shorter secrets are not searched for in free text: a six-digit recorder password such as `000000` would "match"
 * inside sizes, times and hashes and mangle them. Structured log fields are redacted by key instead (log.ts).
 */
export const MIN_SCRUBBED_SECRET_LENGTH = 8;

/** The forms in which a secret may show up in text: itself, the credential after an auth scheme, and JSON-escaped. */
function forms(secret: string): string[] {
  const out = new Set<string>([secret]);
  const m = secret.match(/^(?:Bearer|Basic|Token|Digest|ApiKey)\s+(\S.*)$/i);
  if (m) out.add(m[1]);
  for (const s of [...out]) out.add(JSON.stringify(s).slice(1, -1));
  // Longest first, so that a form containing another is replaced whole.
  return [...out].filter((s) => s.length >= MIN_SCRUBBED_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

/**
 * Replaces every configured secret of at least MIN_SCRUBBED_SECRET_LENGTH characters (hq.mqtt.password,
 * hq.tus.headers.*, recorder passwords) in `text` by [redacted]: for free text that comes from elsewhere (an HQ error
 * body, a library's error message) and may echo a credential back. Call it where such text enters, not on log lines.
 */
export function redactSecrets(text: string): string {
  if (!SECRET_VALUES.size || !text) return text;
  let out = text;
  for (const secret of SECRET_VALUES) for (const f of forms(secret)) if (out.includes(f)) out = out.split(f).join('[redacted]');
  return out;
}
