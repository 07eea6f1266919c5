import { SECRET_VALUES } from './config.ts';

/** The forms in which a secret may show up in text: itself, the credential after an auth scheme, and JSON-escaped. */
function forms(secret: string): string[] {
  const out = new Set<string>([secret]);
  const m = /^(?:Bearer|Basic|Token|Digest|ApiKey)\s+(\S.*)$/i.exec(secret);
  if (m && m[1].length >= 6) out.add(m[1]);
  for (const s of [...out]) out.add(JSON.stringify(s).slice(1, -1));
  // Longest first, so that a form containing another is replaced whole.
  return [...out].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

/**
 * Replaces every configured secret (hq.mqtt.password, hq.tus.headers.*) in `text` by [redacted]: for text that comes
 * from elsewhere (an HQ error body, a library's error message) and may echo a credential back.
 */
export function redactSecrets(text: string): string {
  if (!SECRET_VALUES.size || !text) return text;
  let out = text;
  for (const secret of SECRET_VALUES) for (const f of forms(secret)) if (out.includes(f)) out = out.split(f).join('[redacted]');
  return out;
}
