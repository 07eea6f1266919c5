import type { Config } from './config.ts';

/** The keys a running dockd applies on SIGHUP; any other change needs a restart. */
export const RELOADABLE_KEYS = ['hq.tus.maxBytesPerSecond', 'hq.tus.windows'] as const;

export interface ConfigChanges {
  /** Reloadable keys whose value changed, with both values (neither is a secret). */
  applied: { key: string; from: unknown; to: unknown }[];
  /** Other keys that differ (names only: a value may be a secret); they take effect at the next start. */
  needRestart: string[];
}

function leaves(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, JSON.stringify(value));
}

function at(config: Config, key: string): unknown {
  return key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], config);
}

/** What differs between the config dockd started with and the file as it reads now. */
export function configChanges(running: Config, next: Config): ConfigChanges {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  leaves(running, '', a);
  leaves(next, '', b);
  const reloadable = new Set<string>(RELOADABLE_KEYS);
  const differ = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
  return {
    applied: RELOADABLE_KEYS.filter((k) => differ.includes(k)).map((key) => ({ key, from: at(running, key), to: at(next, key) })),
    needRestart: differ.filter((k) => !reloadable.has(k)),
  };
}

/** Puts the reloadable keys of `next` into the running config (the services read them from there). */
export function applyReloadable(running: Config, next: Config): void {
  running.hq.tus.maxBytesPerSecond = next.hq.tus.maxBytesPerSecond;
  running.hq.tus.windows = [...next.hq.tus.windows];
}
