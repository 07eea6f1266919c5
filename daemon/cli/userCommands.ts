import { isCoded } from '../../drivers/errors.ts';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { hashPassword, passwordProblem, type Role } from '../security/password.ts';
import { Catalog } from '../store/catalog.ts';
import { UserError } from '../store/users.ts';
import { whoIsAsking } from './actor.ts';
import { table } from './format.ts';

/** A mistake in how `dockctl user` was called (exit 2). */
export class UserUsageError extends Error {}

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** The whole of stdin, without the line end a shell `echo` or a file adds. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
    if (size > 64 * 1024) throw new UserUsageError('--password-stdin: more than 64 KiB on stdin');
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks on the terminal without echo (raw mode; backspace works, Ctrl-C cancels). */
function askHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed: string[] = [];
    const finish = (fn: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      fn();
    };
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish(() => resolve(typed.join('')));
        if (ch === '\u0003') return finish(() => reject(new UserUsageError('cancelled')));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed.push(ch);
      }
    };
    stdin.on('data', onData);
  });
}

async function newPassword(role: Role, name: string, fromStdin: boolean): Promise<string> {
  const what = role === 'officer' ? 'PIN' : 'password';
  let plain: string;
  if (fromStdin) plain = await readStdin();
  else {
    if (!process.stdin.isTTY)
      throw new UserUsageError(`no terminal to ask for the ${what} on: give it on stdin with --password-stdin`);
    plain = await askHidden(`${what} for ${name}: `);
    const again = await askHidden(`${what} for ${name} again: `);
    if (again !== plain) throw new UserUsageError(`the two ${what}s differ; nothing changed`);
  }
  const problem = passwordProblem(role, plain);
  if (problem) throw new UserUsageError(`${problem}; nothing changed`);
  return plain;
}

function openCatalog(storageDir: string, readonly: boolean): Catalog {
  const file = path.join(storageDir, 'catalog.sqlite');
  if (!existsSync(file))
    throw new UserUsageError(
      `no catalog at ${file}: start dockd once with this config (it makes the catalog, owned by the account dockd runs as), then add users`,
    );
  return Catalog.open(storageDir, { readonly });
}

/** `dockctl user add|passwd|disable|enable|list`: the station page's accounts, kept in the catalog. */
export async function userCommand(configFile: string, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      role: { type: 'string' },
      'officer-id': { type: 'string' },
      'password-stdin': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const { config } = loadConfig(configFile);
  const by = whoIsAsking();
  const one = (): string => {
    if (positionals.length !== 1) throw new UserUsageError(`user ${sub} needs exactly one NAME`);
    return positionals[0];
  };
  if (sub === 'list') {
    if (positionals.length) throw new UserUsageError('user list takes no NAME');
    const catalog = openCatalog(config.storage.dir, true);
    try {
      const users = catalog.users.list();
      if (values.json) {
        out(JSON.stringify(users, null, 2));
        return 0;
      }
      if (!users.length) {
        out('no users (add one with dockctl user add NAME --role admin)');
        return 0;
      }
      out(
        table([
          ['NAME', 'ROLE', 'OFFICER-ID', 'STATE', 'SESSIONS', 'CREATED', 'UPDATED'],
          ...users.map((u) => [
            u.name,
            u.role,
            u.officerId ?? '-',
            u.disabled ? 'disabled' : u.fromConfig ? 'active (http.adminPassword)' : 'active',
            String(u.openSessions),
            u.createdAt,
            u.updatedAt,
          ]),
        ]),
      );
      return 0;
    } finally {
      catalog.close();
    }
  }
  if (sub === 'add') {
    const name = one();
    const role = values.role;
    if (role !== 'admin' && role !== 'officer') throw new UserUsageError('user add needs --role admin or --role officer');
    const officerId = values['officer-id'];
    if (role === 'officer' && !officerId)
      throw new UserUsageError(
        'an officer needs --officer-id (警号): it is what they log in with, and which recordings are theirs',
      );
    const catalog = openCatalog(config.storage.dir, false);
    try {
      if (catalog.users.get(name)) throw new UserError('EXISTS', `user ${name} exists already`);
      const hash = hashPassword(await newPassword(role, name, Boolean(values['password-stdin'])));
      const user = catalog.addUser({ name, role, officerId: officerId ?? null, hash }, by);
      out(
        role === 'officer'
          ? `user ${user.name} added: officer ${user.officerId}, logs in with the officer id and PIN`
          : `user ${user.name} added: admin, logs in with the name and password`,
      );
      return 0;
    } finally {
      catalog.close();
    }
  }
  if (sub === 'passwd') {
    const name = one();
    const catalog = openCatalog(config.storage.dir, false);
    try {
      const existing = catalog.users.get(name);
      if (!existing) throw new UserError('NOT_FOUND', `no user ${name}`);
      const hash = hashPassword(await newPassword(existing.role, name, Boolean(values['password-stdin'])));
      const r = catalog.setUserPassword(name, hash, by);
      out(
        `${existing.role === 'officer' ? 'PIN' : 'password'} of ${name} changed${r.revoked ? `; ${r.revoked} open session(s) ended` : ''}`,
      );
      return 0;
    } finally {
      catalog.close();
    }
  }
  if (sub === 'disable' || sub === 'enable') {
    const name = one();
    const catalog = openCatalog(config.storage.dir, false);
    try {
      const r = catalog.setUserDisabled(name, sub === 'disable', by);
      out(
        !r.changed
          ? `${name} is already ${sub}d`
          : sub === 'disable'
            ? `${name} disabled${r.revoked ? `; ${r.revoked} open session(s) ended` : ''}`
            : `${name} enabled`,
      );
      return 0;
    } finally {
      catalog.close();
    }
  }
  throw new UserUsageError(`unknown user command ${sub ?? '(none)'}: one of add, passwd, disable, enable, list`);
}

/** Runs `dockctl user …`: exit 0 done, 1 refused (no such user, exists already), 2 wrong usage or input. */
export async function runUserCommand(configFile: string, args: string[]): Promise<number> {
  try {
    return await userCommand(configFile, args);
  } catch (e) {
    process.stderr.write(`dockctl: ${(e as Error).message}\n`);
    if (e instanceof UserError) return e.code === 'INVALID' ? 2 : 1;
    const usage =
      e instanceof UserUsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || isCoded(e, 'CONFIG_INVALID');
    return usage ? 2 : 1;
  }
}
