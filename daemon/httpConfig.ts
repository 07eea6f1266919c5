import { existsSync } from 'node:fs';
import path from 'node:path';
import { isLoopbackHost } from './security/loopback.ts';
import { hashPassword, type PasswordHash } from './security/password.ts';

type Secret = string | { env: string } | { file: string };

/** The station page's config (`http.*`) after validation: secrets resolved, the admin password only as a hash. */
export interface HttpConfig {
  listen: string;
  /** Deprecated bootstrap admin (`http.adminPassword`), kept only as its scrypt hash. */
  adminPasswordHash?: PasswordHash;
  maxFailures: number;
  maxSourceFailures: number;
  lockoutSeconds: number;
  tls?: { cert: string; key: string };
  allowPlainHttp: boolean;
  kiosk: boolean;
  metricsToken?: string;
  sessionHours: number;
  requestTimeoutSeconds: number;
}

export function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

/**
 * Checks what the schema cannot: the port range, TLS beyond loopback (or plain HTTP on purpose), that the TLS files
 * exist (they are read at start, by dockd alone), and resolves the secrets. `fail` throws the one-line config error.
 */
export function checkHttpConfig(
  http: HttpConfig,
  baseDir: string,
  o: { resolveSecret: (key: string, v: Secret, baseDir: string, remember?: boolean) => string; fail: (line: string) => never },
): void {
  const { host, port } = splitListen(http.listen);
  // Port 0: any free port (the log and the start line say which).
  if (port < 0 || port > 65535) o.fail(`config: http.listen: port must be 0-65535 (got ${port})`);
  if (http.tls) {
    for (const k of ['cert', 'key'] as const) {
      http.tls[k] = path.resolve(baseDir, http.tls[k]);
      if (!existsSync(http.tls[k])) o.fail(`config: http.tls.${k}: no such file ${http.tls[k]}`);
    }
  } else if (!isLoopbackHost(host) && !http.allowPlainHttp) {
    o.fail(
      `config: http.tls: http.listen ${http.listen} is beyond loopback, so the station page needs HTTPS (http.tls: {cert, key}); set http.allowPlainHttp: true to serve plain HTTP there on purpose`,
    );
  }
  const raw = http as { adminPassword?: Secret; metricsToken?: Secret };
  const adminPassword = raw.adminPassword;
  delete raw.adminPassword;
  if (adminPassword !== undefined) {
    // Hashed at once: the plain text is neither kept nor added to the redaction set.
    const plain = o.resolveSecret('http.adminPassword', adminPassword, baseDir, false);
    if (!plain) o.fail('config: http.adminPassword: must not be empty');
    http.adminPasswordHash = hashPassword(plain);
  }
  if (raw.metricsToken !== undefined) {
    http.metricsToken = o.resolveSecret('http.metricsToken', raw.metricsToken, baseDir);
    if (http.metricsToken.length < 16) o.fail('config: http.metricsToken: must have at least 16 characters');
  }
}
