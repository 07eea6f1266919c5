import type { IClientOptions, MqttClient } from 'mqtt';

type Server = NonNullable<IClientOptions['servers']>[number];

const DEFAULT_PORTS: Record<string, number> = { mqtt: 1883, tcp: 1883, mqtts: 8883, ws: 80, wss: 443 };

function serverOf(url: string): Server {
  const u = new URL(url);
  const protocol = u.protocol.slice(0, -1) as Server['protocol'] & string;
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port) || DEFAULT_PORTS[protocol], protocol };
}

/**
 * hq.mqtt.urls as mqtt.js `servers`: each connection attempt goes to the next of the list (the first attempt to the
 * first), so a station connects to the first broker that answers and moves on when the one it uses dies.
 * Undefined for a single broker.
 */
export function failoverServers(urls: string[]): Server[] | undefined {
  return urls.length > 1 ? urls.map(serverOf) : undefined;
}

/** The configured URL of the broker the client is connected (or last tried) to. */
export function brokerInUse(client: MqttClient, urls: string[]): string {
  if (urls.length < 2) return urls[0];
  const { host, port } = client.options;
  return (
    urls.find((u) => {
      const s = serverOf(u);
      return s.host === host && s.port === port;
    }) ?? urls[0]
  );
}
