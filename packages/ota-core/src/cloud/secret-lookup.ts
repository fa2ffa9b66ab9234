// Device secrets for the sign-in checks (MQTT CONNECT, CoAP /auth): looked up, maybe in the
// database, before the synchronous HMAC check runs on the one device the username names.

import type { DeviceSecretLookup } from '../protocol/mqtt-auth.js';
import { isValidDeviceName, isValidProductKey } from '../protocol/topics.js';

/** A device secret lookup that may ask a database. */
export interface AsyncDeviceSecretLookup {
  getDeviceSecret(productKey: string, deviceName: string): string | undefined | Promise<string | undefined>;
}

/** The secret of the device a CONNECT's username (deviceName&productKey) names, looked up first. */
export async function lookupFor(username: string | undefined, registry: AsyncDeviceSecretLookup): Promise<DeviceSecretLookup> {
  const amp = typeof username === 'string' ? username.indexOf('&') : -1;
  if (amp < 0) return { getDeviceSecret: () => undefined };
  const dn = username!.slice(0, amp);
  const pk = username!.slice(amp + 1);
  if (!isValidDeviceName(dn) || !isValidProductKey(pk)) return { getDeviceSecret: () => undefined };
  const secret = await registry.getDeviceSecret(pk, dn);
  return { getDeviceSecret: (p, d) => (p === pk && d === dn ? secret : undefined) };
}

