/**
 * The hq.mqtt keys. station.id and hq.mqtt.topicPrefix are MQTT topic levels: only [A-Za-z0-9_-] (the prefix: such
 * levels separated by /), so that every broker delivers P/S/receipt under the very name dockd subscribed to. RabbitMQ
 * rewrites '.', which made a station with a dot in its id lose every receipt. Anything else is refused in one line
 * naming the key, what is allowed and why. hq.mqtt.protocolVersion is 4 or 5; hq.mqtt.urls a list of brokers.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../daemon/config.ts';
import { LogThrottle } from '../../daemon/status/logThrottle.ts';
import { createLogger } from '../../daemon/log.ts';

function doc(stationId: string, topicPrefix?: string): Record<string, any> {
  return {
    station: { id: stationId },
    storage: { dir: 'var/store' },
    dock: { mountRoots: ['var/dock'] },
    hq: {
      tus: { endpoint: 'https://hq.example.org/files/' },
      mqtt: { url: 'mqtts://hq.example.org:8883', ...(topicPrefix === undefined ? {} : { topicPrefix }) },
    },
  };
}

function refusal(d: Record<string, any>): string {
  try {
    validateConfig(d, '/srv');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('the config was accepted');
}

describe('topic-safe ids', () => {
  it.each(['dock-01', 'DOCK_7', 'a', '0', 'x'.repeat(64), 'st-sh'])('accepts station.id %j', (id) => {
    expect(validateConfig(doc(id), '/srv').station.id).toBe(id);
  });

  it.each(['st.01', 'dock 07', 'dock/07', 'dock+', 'dock#', '-dock', '_dock', 'x'.repeat(65), '站01', 'dock\n07', ''])(
    'refuses station.id %j in one line that says what is allowed and why',
    (id) => {
      const line = refusal(doc(id));
      expect(line).not.toContain('\n');
      expect(line.startsWith('config: station.id: has an invalid value')).toBe(true);
      if (id) {
        expect(line).toContain(`got ${JSON.stringify(id)}`);
        expect(line).toContain('letters A-Z a-z, digits, _ and -');
        expect(line).toContain("RabbitMQ rewrite '.'");
      }
    },
  );

  it.each(['dockd', 'police/evidence/dockd', 'a_b-c/0'])('accepts hq.mqtt.topicPrefix %j', (p) => {
    expect(validateConfig(doc('dock-01', p), '/srv').hq.mqtt.topicPrefix).toBe(p);
  });

  it.each(['police.hq', 'a/b.c', '/dockd', 'dockd/', 'a//b', 'dock d', 'dock+d', 'dockd/#', '$SYS/dockd', ''])(
    'refuses hq.mqtt.topicPrefix %j in one line',
    (p) => {
      const line = refusal(doc('dock-01', p));
      expect(line).not.toContain('\n');
      expect(line).toContain(
        `config: hq.mqtt.topicPrefix: has an invalid value (must match ^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$): got ${JSON.stringify(p)}`,
      );
      expect(line).toContain('levels separated by /');
    },
  );

  it('the prefix defaults to dockd', () => {
    expect(validateConfig(doc('dock-01'), '/srv').hq.mqtt.topicPrefix).toBe('dockd');
  });
});

describe('hq.mqtt.protocolVersion', () => {
  it('is 4 (MQTT 3.1.1) unless set; 5 is accepted', () => {
    expect(validateConfig(doc('dock-01'), '/srv').hq.mqtt.protocolVersion).toBe(4);
    const d = doc('dock-01');
    d.hq.mqtt.protocolVersion = 5;
    expect(validateConfig(d, '/srv').hq.mqtt.protocolVersion).toBe(5);
  });

  it.each([3, 6, '5', 3.1])('refuses %j in one line', (v) => {
    const d = doc('dock-01');
    d.hq.mqtt.protocolVersion = v;
    expect(refusal(d)).toMatch(/^config: hq\.mqtt\.protocolVersion: (must be one of 4, 5|wrong type: must be integer)$/);
  });

  it('refuses 5 with the embedded HQ, whose broker speaks 3.1.1 only', () => {
    const d = doc('dock-01');
    d.hq = {
      embedded: true,
      tus: { endpoint: 'http://127.0.0.1:1080/files/' },
      mqtt: { url: 'mqtt://127.0.0.1:1883', protocolVersion: 5 },
    };
    expect(refusal(d)).toBe(
      "config: hq.mqtt.protocolVersion: the embedded HQ's broker speaks MQTT 3.1.1 only: use 4 with hq.embedded: true",
    );
  });
});

describe('hq.mqtt.urls', () => {
  function withUrls(urls: unknown, url?: string): Record<string, any> {
    const d = doc('dock-01');
    if (url === undefined) delete d.hq.mqtt.url;
    else d.hq.mqtt.url = url;
    d.hq.mqtt.urls = urls;
    return d;
  }

  it('a list of brokers; url is its first', () => {
    const c = validateConfig(withUrls(['mqtts://a.hq:8883', 'mqtts://b.hq:8883']), '/srv');
    expect(c.hq.mqtt.urls).toEqual(['mqtts://a.hq:8883', 'mqtts://b.hq:8883']);
    expect(c.hq.mqtt.url).toBe('mqtts://a.hq:8883');
  });

  it('a single url is a list of one', () => {
    expect(validateConfig(doc('dock-01'), '/srv').hq.mqtt.urls).toEqual(['mqtts://hq.example.org:8883']);
  });

  it.each([
    [
      'neither',
      (d: any) => {
        delete d.hq.mqtt.url;
      },
      'config: hq.mqtt.url: missing required key (or hq.mqtt.urls, a list of brokers)',
    ],
    [
      'both',
      (d: any) => {
        d.hq.mqtt.urls = ['mqtt://b.hq'];
      },
      'config: hq.mqtt.urls: give hq.mqtt.url (one broker) or hq.mqtt.urls (a list), not both',
    ],
  ])('refuses %s in one line', (_what, edit, line) => {
    const d = doc('dock-01');
    edit(d);
    expect(refusal(d)).toBe(line);
  });

  it.each([
    [[], /^config: hq\.mqtt\.urls: /],
    [['mqtt://a.hq', 'mqtt://a.hq'], /^config: hq\.mqtt\.urls: /],
    [['mqtt://a.hq', 'http://b.hq'], /^config: hq\.mqtt\.urls\.1: has an invalid value/],
    [['mqtt://a.hq', 'mqtt://b hq'], /^config: hq\.mqtt\.urls\.1: not a valid URL/],
    [
      ['mqtt://a.hq', 'mqtt://st:pw@b.hq'],
      /^config: hq\.mqtt\.urls\.1: put credentials in hq\.mqtt\.username and hq\.mqtt\.password/,
    ],
    [
      ['wss://a.hq/mqtt', 'wss://b.hq/ws'],
      /^config: hq\.mqtt\.urls\.1: every broker of the list is reached with the path of the first \(\/mqtt\), not \/ws$/,
    ],
  ])('refuses %j in one line', (urls, line) => {
    const message = refusal(withUrls(urls));
    expect(message).not.toContain('\n');
    expect(message).toMatch(line);
  });

  it('mqtt:// brokers with and without a trailing slash are the same list', () => {
    expect(validateConfig(withUrls(['mqtt://a.hq:1883', 'mqtt://b.hq:1883/']), '/srv').hq.mqtt.urls).toHaveLength(2);
  });

  it('the embedded HQ runs one broker', () => {
    const d = withUrls(['mqtt://127.0.0.1:1883', 'mqtt://127.0.0.1:1884']);
    d.hq.embedded = true;
    d.hq.tus.endpoint = 'http://127.0.0.1:1080/files/';
    expect(refusal(d)).toBe('config: hq.mqtt.urls: the embedded HQ runs one broker: give hq.mqtt.url');
  });
});

describe('LogThrottle', () => {
  it('writes the first warning of a key, then at most one per interval, saying how many it left out', () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('info', {
      write: (s: string) => {
        lines.push(JSON.parse(s));
      },
    });
    let now = 0;
    const t = new LogThrottle(60_000, () => now);
    for (let i = 0; i < 5; i++) t.warn(log, 'topic', { i }, 'odd topic');
    t.warn(log, 'other', { i: 'o' }, 'another kind');
    now = 60_000;
    t.warn(log, 'topic', { i: 5 }, 'odd topic');
    expect(lines.map((l) => [l.msg, l.i, l.suppressed])).toEqual([
      ['odd topic', 0, undefined],
      ['another kind', 'o', undefined],
      ['odd topic', 5, 4],
    ]);
  });
});
