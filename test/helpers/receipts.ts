/** HQ's receipts, sent as HQ sends them: QoS 1 on the real broker, signed by the test HQ. */
import mqtt from 'mqtt';
import { signedReceipt } from './hqKeys.ts';

/**
 * Publishes one receipt to `P/S/receipt` with QoS 1, as HQ does. An object `{sha256, ok, ...}` is signed by the test HQ
 * (its stationId and at filled in unless given) unless `sign` is false or it carries a sig already; any other object is
 * sent as JSON, a string or Buffer as is.
 */
export async function sendReceipt(
  brokerUrl: string,
  stationId: string,
  body: Record<string, unknown> | string | Buffer,
  prefix = 'dockd',
  sign = true,
): Promise<void> {
  const client = await mqtt.connectAsync(brokerUrl, { reconnectPeriod: 0, connectTimeout: 10_000 });
  try {
    let payload: string | Buffer;
    if (typeof body === 'string' || Buffer.isBuffer(body)) payload = body;
    else if (sign && typeof body.sha256 === 'string' && typeof body.ok === 'boolean' && body.sig === undefined) {
      const stId = typeof body.stationId === 'string' ? body.stationId : stationId;
      payload = JSON.stringify({
        ...body,
        ...signedReceipt(stId, body.sha256, body.ok, { at: typeof body.at === 'string' ? body.at : undefined }),
      });
    } else payload = JSON.stringify(body);
    await client.publishAsync(`${prefix}/${stationId}/receipt`, payload, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}
