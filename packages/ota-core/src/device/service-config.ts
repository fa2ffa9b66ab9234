// What the device service runs with: its options merged with the device config file and checked
// (identity, broker and transport, trusted keys, download protocol, the flash port).

import type { TrustedKey } from '@otadiff/patch-apply';
import { loadDeviceConfig, type DeviceConfig } from './device-config.js';
import { createFlashDirPort, type OtaPort } from './flash-port.js';
import { OtaServiceError, type DownloadProtocol, type OtaServiceOptions } from './service-types.js';
import { resolveTrustedKeys, TrustedKeyError } from './trusted-keys.js';

export interface ServiceConfig {
  productKey: string;
  deviceName: string;
  deviceSecret: string;
  broker: string;
  transport: 'mqtt' | 'coap';
  protocol: DownloadProtocol;
  /** Keys a package must be signed by; undefined: signatures are not judged. */
  trust: readonly TrustedKey[] | undefined;
  port: OtaPort;
  /** The service opened the port (from the config's flash directory) and closes it. */
  ownsPort: boolean;
}

/** Throws OtaServiceError('CONFIG') for anything missing or inconsistent. */
export function resolveServiceConfig(opts: OtaServiceOptions): ServiceConfig {
  const transport = opts.transport ?? 'mqtt';
  if (transport !== 'mqtt' && transport !== 'coap') throw new OtaServiceError('CONFIG', `unknown transport ${String(opts.transport)} (mqtt or coap)`);
  let cfg: DeviceConfig | undefined;
  const need = opts.productKey === undefined || opts.deviceName === undefined || opts.deviceSecret === undefined || (opts.port === undefined && opts.broker === undefined);
  if (need) {
    try {
      cfg = loadDeviceConfig(opts.configPath);
    } catch (e) {
      if (opts.productKey === undefined || opts.deviceName === undefined || opts.deviceSecret === undefined || opts.port === undefined) {
        throw new OtaServiceError('CONFIG', (e as Error).message, { cause: e });
      }
    }
  }
  const productKey = opts.productKey ?? cfg?.productKey;
  const deviceName = opts.deviceName ?? cfg?.deviceName;
  const deviceSecret = opts.deviceSecret ?? cfg?.deviceSecret;
  if (productKey === undefined || deviceName === undefined || deviceSecret === undefined) throw new OtaServiceError('CONFIG', 'productKey, deviceName and deviceSecret are required');
  const broker = opts.broker ?? cfg?.broker ?? (transport === 'coap' ? 'coap://127.0.0.1:5683' : 'mqtt://127.0.0.1:1883');
  const scheme = /^([a-z]+):/.exec(broker)?.[1];
  if (transport === 'coap' ? scheme !== 'coap' : scheme === 'coap') {
    throw new OtaServiceError('CONFIG', `transport ${transport} cannot use ${broker}`);
  }
  const keys = opts.trustedKeys ?? cfg?.trustedKeys;
  let trust: readonly TrustedKey[] | undefined;
  if (keys !== undefined) {
    if (keys.length === 0) throw new OtaServiceError('CONFIG', 'trustedKeys is empty: give at least one public key, or leave it out');
    try {
      trust = resolveTrustedKeys(keys);
    } catch (e) {
      if (e instanceof TrustedKeyError) throw new OtaServiceError('CONFIG', e.message, { cause: e });
      throw e;
    }
  }
  const protocol = opts.downloadProtocol ?? 'http';
  if (!['http', 'https', 'coap'].includes(protocol)) throw new OtaServiceError('CONFIG', `unknown download protocol ${protocol}`);
  if (opts.port !== undefined) return { productKey, deviceName, deviceSecret, broker, transport, protocol, trust, port: opts.port, ownsPort: false };
  if (cfg?.flash === undefined) throw new OtaServiceError('CONFIG', 'no port given and the device config names no flash directory');
  // The bootloader trusts the same keys as the service.
  return { productKey, deviceName, deviceSecret, broker, transport, protocol, trust, port: createFlashDirPort(cfg.flash, { trustedKeys: trust }), ownsPort: true };
}
