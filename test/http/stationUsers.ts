import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DOCKCTL_BIN } from '../helpers/daemon.ts';

/** Test helpers around the station page's users: dockctl user, addresses, a self-signed certificate, the audit table. */

export function dockctlWithInput(
  configFile: string,
  args: string[],
  input: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [DOCKCTL_BIN, '--config', configFile, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    p.stdin.end(input);
  });
}

/** `dockctl user add` with the password on stdin; throws when refused. */
export async function addUser(
  configFile: string,
  name: string,
  role: 'admin' | 'officer',
  password: string,
  officerId?: string,
): Promise<void> {
  const r = await dockctlWithInput(
    configFile,
    ['user', 'add', name, '--role', role, ...(officerId ? ['--officer-id', officerId] : []), '--password-stdin'],
    `${password}\n`,
  );
  if (r.code !== 0) throw new Error(`dockctl user add ${name}: exit ${r.code}: ${r.stderr}`);
}

/** An IPv4 address of this machine that is not loopback (eth0's), for a page listening "beyond loopback". */
export function beyondLoopbackAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.')) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address to bind the station page to (hostname -I is empty)');
}

/** A self-signed certificate for `ip` (and localhost), made by openssl: PEM files in `dir`. */
export async function selfSignedCert(dir: string, ip: string): Promise<{ cert: string; key: string; pem: Buffer }> {
  const cert = path.join(dir, 'page-cert.pem');
  const key = path.join(dir, 'page-key.pem');
  await new Promise<void>((resolve, reject) => {
    execFile(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=dockd station page test',
        '-addext',
        `subjectAltName=IP:${ip},IP:127.0.0.1,DNS:localhost`,
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { timeout: 60_000 },
      (err, _o, stderr) => (err ? reject(new Error(`openssl: ${stderr || err.message}`)) : resolve()),
    );
  });
  await fs.chmod(key, 0o600);
  return { cert, key, pem: await fs.readFile(cert) };
}

export interface AuditRow {
  seq: number;
  type: string;
  subject: string | null;
  data: Record<string, any>;
}

/** The audit entries after `afterSeq`, read straight from the catalog (read-only, beside the running daemon). */
export function auditAfter(storeDir: string, afterSeq = 0): AuditRow[] {
  const db = new Database(path.join(storeDir, 'catalog.sqlite'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return (
      db.prepare(`SELECT seq, type, subject, data FROM audit WHERE seq > ? ORDER BY seq`).all(afterSeq) as {
        seq: number;
        type: string;
        subject: string | null;
        data: string;
      }[]
    ).map((r) => ({ ...r, data: JSON.parse(r.data) }));
  } finally {
    db.close();
  }
}

export function auditHeadSeq(storeDir: string): number {
  const db = new Database(path.join(storeDir, 'catalog.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT COALESCE(MAX(seq), 0) seq FROM audit`).get() as { seq: number }).seq;
  } finally {
    db.close();
  }
}

/** The catalog's recordings (id, sha256, state, officer), read-only beside the running daemon. */
export function catalogFiles(
  storeDir: string,
): { id: number; sha256: string | null; state: string; officer_id: string | null; filename: string; case_no: string | null }[] {
  const db = new Database(path.join(storeDir, 'catalog.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT id, sha256, state, officer_id, filename, case_no FROM files ORDER BY id`).all() as never;
  } finally {
    db.close();
  }
}
