// The device's notice channel to the cloud, whichever transport carries it (MQTT topics or the
// same messages over CoAP), and what a failed connection means.

import { connectOtaDeviceCoap, OtaCoapError } from './coap-link.js';
import { connectOtaDevice } from './mqtt-link.js';
import { OtaServiceError, type DownloadProtocol, type OtaServiceOptions } from './service-types.js';
import type { CancelNotice, UpgradeInfo, UpgradeParseOptions } from '../protocol/messages.js';
import type { DeviceIdentity } from '../protocol/mqtt-auth.js';

export function allowedProtocols(p: DownloadProtocol): string[] {
  if (p === 'https') return ['https:'];
  if (p === 'coap') return ['coap:'];
  return ['http:', 'https:'];
}

/** The notice channel to the cloud, whichever transport carries it. */
export interface DeviceLink {
  reportVersion(version: string, module?: string): Promise<void>;
  reportProgress(step: number, desc?: string, module?: string): Promise<void>;
  onUpgrade(handler: (info: UpgradeInfo) => void): void;
  /** The cloud cancelled an update (its rollout was cancelled). */
  onCancel(handler: (c: CancelNotice) => void): void;
  close(): Promise<void>;
  /** Drop the link at once (a power cut). */
  kill(): Promise<void>;
}

export function connectError(e: unknown, broker: string): OtaServiceError {
  if (e instanceof OtaCoapError && e.code === 'AUTH') return new OtaServiceError('AUTH', e.message, { cause: e });
  const code = (e as { code?: unknown })?.code;
  const msg = (e as Error)?.message ?? String(e);
  if (code === 4 || code === 5 || code === 134 || code === 135 || /bad username or password|not authori[sz]ed/i.test(msg)) {
    return new OtaServiceError('AUTH', `the broker refused the device's sign-in: ${msg}`, { cause: e });
  }
  return new OtaServiceError('CONNECT', `cannot connect to ${broker}: ${msg}`, { cause: e });
}

/** The link, and (MQTT only: CoAP has no connection to lose) a way to hear that it dropped. */
export interface OpenedLink {
  link: DeviceLink;
  onDrop?: (fn: () => void) => void;
}

/** Signs in over `transport` at `broker`; a failure is an OtaServiceError (AUTH or CONNECT). */
export async function openNoticeLink(
  transport: 'mqtt' | 'coap',
  broker: string,
  identity: DeviceIdentity,
  opts: Pick<OtaServiceOptions, 'signMethod' | 'noticePollMs' | 'download'>,
  upgradeParse: UpgradeParseOptions,
  onInvalid: (where: string, error: Error) => void,
): Promise<OpenedLink> {
  try {
    if (transport === 'coap') {
      const c = await connectOtaDeviceCoap(broker, identity, {
        signMethod: opts.signMethod,
        upgradeParse,
        onInvalid,
        pollMs: opts.noticePollMs,
        ackTimeoutMs: opts.download?.ackTimeoutMs,
      });
      return { link: { ...c, kill: () => c.close() } };
    }
    const c = await connectOtaDevice(broker, identity, { signMethod: opts.signMethod, upgradeParse, onInvalid, ca: opts.download?.ca });
    c.mqtt.on('error', () => {}); // surfaced through 'close'
    return { link: { ...c, kill: () => c.mqtt.endAsync(true) }, onDrop: (fn) => void c.mqtt.on('close', fn) };
  } catch (e) {
    throw connectError(e, broker);
  }
}
