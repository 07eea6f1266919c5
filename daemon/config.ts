import { readFileSync } from 'node:fs';
import { nodeCrypto } from './nodeCrypto.ts';
import path from 'node:path';
import type { ErrorObject } from 'ajv';
import { validateConfig as validateSchema, validatorId } from './configValidator.ts';
import { checkHttpConfig, type HttpConfig } from './httpConfig.ts';
import { ed25519PublicKeyPem } from './custody/keys.ts';
import { CodedError } from '../drivers/errors.ts';

import { PACKAGE_ROOT } from './packageRoot.ts';
import { parseWithCache } from './parsedConfigCache.ts';
import { parseYaml, yamlParserId } from './yamlParse.ts';

export { PACKAGE_ROOT };
export const DEFAULT_CONFIG_FILE = path.join(PACKAGE_ROOT, 'config', 'default.yaml');

export interface DeviceEntry {
  serial: string;
  officerId: string;
  officerName?: string;
  password?: string;
  model?: string;
}

export type Secret = string | { env: string } | { file: string };

export interface Config {
  station: { id: string; timeZone?: string; place?: string };
  storage: { dir: string; lowWaterBytes: number; reserveBytes: number };
  dock: {
    mountRoots: string[];
    concurrency: number;
    settleMs: number;
    settleSeconds: number;
    rescanSeconds: number;
    wipe: 'never' | 'after-archive';
    serialDir: string;
    recorderPassword: string;
    allowUnknown: boolean;
    storageTimeoutSeconds: number;
    commandTimeoutMs: number;
    bays: { id: string; usbPort?: string; tty?: string }[];
  };
  devices: DeviceEntry[];
  hq: {
    embedded: boolean;
    tus: {
      endpoint: string;
      headers: Record<string, string>;
      concurrency: number;
      stallTimeoutSeconds: number;
      maxRetryDelaySeconds: number;
      /** The station's total upload rate in bytes per second (0: no cap); re-read on SIGHUP. */
      maxBytesPerSecond: number;
      /** `HH:MM-HH:MM` (station time zone) in which ordinary recordings upload; empty: always. Re-read on SIGHUP. */
      windows: string[];
    };
    mqtt: {
      url: string;
      urls: string[];
      topicPrefix: string;
      protocolVersion: 4 | 5;
      username?: string;
      password?: string;
      tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean };
    };
    receiptTimeoutSeconds: number;
    auditIntervalSeconds: number;
    /** HQ's Ed25519 public key (PEM) that receipts must be signed with; with the embedded HQ and none set, its own. */
    receiptKey?: string;
  };
  usb: {
    enabled: boolean;
    hotplug: 'auto' | 'libusb' | 'sysfs';
    sysfsRoot: string;
    devRoot: string;
    runtimeMountRoot: string;
    mountHelper: string;
    fingerprints: Record<string, unknown>[];
  };
  retention: { localDays: number };
  integrity: { algorithms: ('sha256' | 'sm3')[] };
  /** Deadlines (hours) whose breach raises an alarm (daemon/status/deadlines.ts). */
  rules: { offloadWithinHours: number; annotateWithinHours: number; uploadWithinHours: number; dockWithinHours: number };
  log: { level: string; format: 'auto' | 'json' | 'readable' };
  /** The station page and API (daemon/httpConfig.ts); the admin password is kept only as its scrypt hash. */
  http: HttpConfig;
}

/** Values of secrets resolved from {env} / {file}, for redaction of anything that might echo them. */
export const SECRET_VALUES = new Set<string>();

function resolveSecret(key: string, v: Secret, baseDir: string, remember = true): string {
  let value: string;
  if (typeof v === 'string') value = v;
  else if ('env' in v) {
    const e = process.env[v.env];
    if (e === undefined) throw new ConfigError(`config: ${key}: environment variable ${v.env} is not set`);
    value = e;
  } else {
    try {
      value = readFileSync(path.resolve(baseDir, v.file), 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ConfigError(
        `config: ${key}: cannot read secret file ${v.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  }
  if (value && remember) SECRET_VALUES.add(value);
  return value;
}

export interface LoadedConfig {
  config: Config;
  file: string;
  sha256: string;
}

/** A config problem: `message` is the one line the daemon prints before exiting. */
export class ConfigError extends CodedError<'CONFIG_INVALID'> {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

function keyPath(err: ErrorObject): string {
  const base = err.instancePath.split('/').filter(Boolean).join('.');
  const join = (k: string) => (base ? `${base}.${k}` : k);
  if (err.keyword === 'additionalProperties') return join(String(err.params.additionalProperty));
  if (err.keyword === 'required') return join(String(err.params.missingProperty));
  return base || '(top level)';
}

function describe(err: ErrorObject): string {
  switch (err.keyword) {
    case 'additionalProperties':
      return 'unknown key';
    case 'required':
      return 'missing required key';
    case 'type':
      return `wrong type: must be ${err.params.type}`;
    case 'enum':
      return `must be one of ${(err.params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern': {
      const why = (err.parentSchema as { patternMessage?: string } | undefined)?.patternMessage;
      return `has an invalid value (must match ${err.params.pattern})${why ? `: got ${JSON.stringify(err.data)}; ${why}` : ''}`;
    }
    default:
      return err.message ?? 'invalid';
  }
}

/** hq.mqtt.url or hq.mqtt.urls (exactly one of them), as [key, url] pairs; fills in the other. */
function mqttBrokers(config: Config): [string, string][] {
  const m = config.hq.mqtt as { url?: string; urls?: string[] };
  if (m.url === undefined && m.urls === undefined)
    throw new ConfigError('config: hq.mqtt.url: missing required key (or hq.mqtt.urls, a list of brokers)');
  if (m.url !== undefined && m.urls !== undefined)
    throw new ConfigError('config: hq.mqtt.urls: give hq.mqtt.url (one broker) or hq.mqtt.urls (a list), not both');
  const pairs: [string, string][] = m.urls ? m.urls.map((u, i) => [`hq.mqtt.urls.${i}`, u]) : [['hq.mqtt.url', m.url!]];
  m.urls ??= [m.url!];
  m.url ??= m.urls[0];
  return pairs;
}

/** A list of brokers shares one path (ws/wss), and the embedded HQ runs a single broker. */
function checkBrokerList(config: Config, brokers: [string, string][]): void {
  if (brokers.length < 2) return;
  if (config.hq.embedded) throw new ConfigError('config: hq.mqtt.urls: the embedded HQ runs one broker: give hq.mqtt.url');
  // Only WebSocket URLs have a path that matters; mqtt.js takes it from the first URL.
  const pathOf = (url: URL) => (url.protocol === 'ws:' || url.protocol === 'wss:' ? url.pathname || '/' : '/');
  const path0 = pathOf(new URL(brokers[0][1]));
  for (const [key, url] of brokers) {
    const u = new URL(url);
    if (u.username || u.password)
      throw new ConfigError(
        `config: ${key}: put credentials in hq.mqtt.username and hq.mqtt.password, which every broker of the list is given`,
      );
    if (pathOf(u) !== path0)
      throw new ConfigError(
        `config: ${key}: every broker of the list is reached with the path of the first (${path0}), not ${pathOf(u)}`,
      );
  }
}

/** Validates a parsed document, fills defaults and resolves paths; throws ConfigError with one line. */
export function validateConfig(doc: unknown, baseDir = process.cwd()): Config {
  return completeConfig(schemaChecked(doc), baseDir);
}

/**
 * A copy of the parsed document checked against the schema, its defaults filled in, and its time zone checked: what
 * depends only on the text, the validator and ICU's zones (dockctl caches it, see loadConfig). Throws ConfigError with
 * one line.
 */
function schemaChecked(doc: unknown): Record<string, unknown> {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError('config: the document must be a mapping of keys');
  const copy = structuredClone(doc) as Record<string, unknown>;
  const checked = validateSchema(copy);
  if (!checked.ok) {
    const err = checked.errors.find((e) => e.keyword === 'additionalProperties') ?? checked.errors[0];
    throw new ConfigError(`config: ${keyPath(err)}: ${describe(err)}`);
  }
  checkTimeZone((copy as { station: { timeZone?: string } }).station.timeZone);
  return copy;
}

/**
 * station.timeZone must be a zone this runtime's ICU knows. It depends only on the text and on ICU's data, so it is
 * part of what dockctl caches (the parser id names both): the list alone costs ≈ 2 ms of every `dockctl` command. A
 * canonical zone is looked up in the list; anything else (an alias) is tried with a formatter, which costs tens of
 * milliseconds of ICU set-up.
 */
function checkTimeZone(tz: string | undefined): void {
  if (!tz || Intl.supportedValuesOf('timeZone').includes(tz)) return;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
  } catch {
    throw new ConfigError(`config: station.timeZone: unknown time zone "${tz}"`);
  }
}

/**
 * The rest of validation, on a document the schema has checked: the checks a schema cannot make, secrets read (from
 * the environment and files, at every call), paths resolved against `baseDir`.
 */
function completeConfig(checked: Record<string, unknown>, baseDir: string): Config {
  const config = checked as unknown as Config;
  const serials = new Set<string>();
  config.devices.forEach((d, i) => {
    if (serials.has(d.serial)) throw new ConfigError(`config: devices.${i}.serial: duplicate serial "${d.serial}"`);
    serials.add(d.serial);
  });
  const brokers = mqttBrokers(config);
  for (const [key, url] of [['hq.tus.endpoint', config.hq.tus.endpoint] as const, ...brokers]) {
    let host: string;
    try {
      host = new URL(url).hostname;
    } catch {
      throw new ConfigError(`config: ${key}: not a valid URL (${JSON.stringify(url)})`);
    }
    if (config.hq.embedded && !['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) {
      throw new ConfigError(
        `config: ${key}: hq.embedded is true, so it must point at loopback (got ${host}); set hq.embedded: false to use a real HQ`,
      );
    }
  }
  checkBrokerList(config, brokers);
  if (config.hq.embedded && config.hq.mqtt.protocolVersion === 5) {
    throw new ConfigError(
      "config: hq.mqtt.protocolVersion: the embedded HQ's broker speaks MQTT 3.1.1 only: use 4 with hq.embedded: true",
    );
  }
  const raw = config as unknown as {
    hq: { mqtt: { password?: Secret }; tus: { headers: Record<string, Secret> } };
    dock: { recorderPassword: Secret };
    devices: { password?: Secret }[];
  };
  config.dock.recorderPassword = resolveSecret('dock.recorderPassword', raw.dock.recorderPassword, baseDir);
  raw.devices.forEach((d, i) => {
    if (d.password !== undefined) config.devices[i].password = resolveSecret(`devices.${i}.password`, d.password, baseDir);
  });
  if (raw.hq.mqtt.password !== undefined)
    config.hq.mqtt.password = resolveSecret('hq.mqtt.password', raw.hq.mqtt.password, baseDir);
  for (const [h, v] of Object.entries(raw.hq.tus.headers))
    config.hq.tus.headers[h] = resolveSecret(`hq.tus.headers.${h}`, v, baseDir);
  const receiptKey = (raw.hq as { receiptKey?: Secret }).receiptKey;
  if (receiptKey !== undefined) {
    // Public, so not remembered for redaction; read like a secret because it usually lives in a file.
    const text = resolveSecret('hq.receiptKey', receiptKey, baseDir, false);
    try {
      config.hq.receiptKey = ed25519PublicKeyPem(text);
    } catch (e) {
      throw new ConfigError(`config: hq.receiptKey: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const tls = config.hq.mqtt.tls;
  if (tls) for (const k of ['ca', 'cert', 'key'] as const) if (tls[k]) tls[k] = path.resolve(baseDir, tls[k]!);
  config.storage.dir = path.resolve(baseDir, config.storage.dir);
  config.dock.mountRoots = config.dock.mountRoots.map((r) => path.resolve(baseDir, r));
  config.dock.serialDir = path.resolve(baseDir, config.dock.serialDir);
  config.usb.runtimeMountRoot = path.resolve(baseDir, config.usb.runtimeMountRoot);
  if (config.usb.mountHelper) config.usb.mountHelper = path.resolve(baseDir, config.usb.mountHelper);
  checkHttpConfig(config.http, baseDir, {
    resolveSecret,
    fail: (line) => {
      throw new ConfigError(line);
    },
  });
  return config;
}

/**
 * Reads, parses and validates the config file. `parseCache`: take the parse, as the schema checked it with its
 * defaults, from the user's cache when the text, the validator and ICU's version are the ones cached (dockctl; see
 * daemon/parsedConfigCache.ts): then neither yaml nor the validator is loaded. The other checks beyond the schema,
 * secrets and paths are worked out every time. The daemon parses and checks the file itself.
 */
export function loadConfig(file: string, { parseCache = false } = {}): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`config: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const parseAndCheck = (t: string) => {
    let doc: unknown;
    try {
      doc = parseYaml(t);
    } catch (e) {
      throw new ConfigError(`config: ${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    return schemaChecked(doc);
  };
  const checked = parseCache
    ? (parseWithCache(
        path.resolve(file),
        text,
        `${yamlParserId()}; ${validatorId()}; icu ${process.versions.icu} tz ${process.versions.tz}`,
        parseAndCheck,
      ) as Record<string, unknown>)
    : parseAndCheck(text);
  const baseDir = path.resolve(file) === DEFAULT_CONFIG_FILE ? PACKAGE_ROOT : process.cwd();
  const config = completeConfig(checked, baseDir);
  let sha256: string | undefined;
  let unhashed: string | null = text; // let go once hashed (it may hold secrets)
  return {
    config,
    file: path.resolve(file),
    // computed when first read (the daemon logs it; dockctl's commands never read it)
    get sha256() {
      if (unhashed !== null) {
        sha256 = nodeCrypto().createHash('sha256').update(unhashed).digest('hex');
        unhashed = null;
      }
      return sha256!;
    },
  };
}

/** `--config FILE`, else $DOCKD_CONFIG, else config/default.yaml of this package. */
export function configFileFromArgs(argv: string[]): { file: string; rest: string[] } {
  const rest: string[] = [];
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') {
      file = argv[++i];
      if (!file) throw new ConfigError('config: --config needs a file');
    } else if (argv[i].startsWith('--config=')) file = argv[i].slice('--config='.length);
    else rest.push(argv[i]);
  }
  return { file: file ?? (process.env.DOCKD_CONFIG || DEFAULT_CONFIG_FILE), rest };
}
