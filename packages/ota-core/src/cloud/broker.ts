// Embedded MQTT broker (aedes) speaking the Aliyun OTA topic set.
// Devices sign in with Aliyun-style credentials and may only publish their own
// inform/progress topics and subscribe to their own upgrade topic. The cloud
// process signs in with a separate service credential and may subscribe to
// everyone's inform/progress topics and publish anyone's upgrade topic.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { MqttAuthError, verifyMqttCredentials, type MqttSignMethod, type ServiceCredential } from '../protocol/mqtt-auth.js';
import { otaTopicFilter, parseOtaTopic } from '../protocol/topics.js';
import { lookupFor, type AsyncDeviceSecretLookup } from './secret-lookup.js';

export interface BrokerOptions {
  registry: AsyncDeviceSecretLookup;
  /** The cloud's own sign-in. */
  service: ServiceCredential;
  port?: number;
  host?: string;
  /** Clock for timestamp freshness (ms); omit to accept any timestamp. */
  now?: () => number;
  maxSkewMs?: number;
  allowedSignMethods?: readonly MqttSignMethod[];
}

export interface BrokerHandle {
  url: string;
  port: number;
  aedes: Aedes;
  /** Disconnects every live session of the device (it was removed or its secret rotated); returns how many. */
  endDeviceSessions(productKey: string, deviceName: string): number;
  close(): Promise<void>;
}

type Principal =
  | { kind: 'device'; productKey: string; deviceName: string }
  | { kind: 'service' };

// Aedes' CONNACK return codes (MQTT 3.1.1 table 3.1).
const RC_IDENTIFIER_REJECTED = 2;
const RC_BAD_USERNAME_OR_PASSWORD = 4;

function authError(message: string, returnCode: number): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

// Hash both sides first so the comparison is constant-time whatever the lengths.
function sameSecret(a: string | Buffer, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

const principalKey = (p: Principal): string => (p.kind === 'service' ? 'service' : `${p.productKey}/${p.deviceName}`);

export async function startBroker(opts: BrokerOptions): Promise<BrokerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const principals = new WeakMap<Client, Principal>();
  // clientId -> principal key of its current holder: a device must not be able
  // to kick another device off by reusing its client id.
  const clientIdOwner = new Map<string, { key: string; client: Client }>();

  const options: AedesOptions = {
    maxClientsIdLength: 256,
    authenticate(client, username, password, done) {
      const fail = (e: unknown): void => {
        const msg = e instanceof MqttAuthError ? `${e.code}: ${e.message}` : 'authentication failed';
        done(authError(msg, RC_BAD_USERNAME_OR_PASSWORD), false);
      };
      const admit = (principal: Principal): void => {
        const owner = clientIdOwner.get(client.id);
        if (owner !== undefined && owner.key !== principalKey(principal)) {
          return done(authError('client id held by another principal', RC_IDENTIFIER_REJECTED), false);
        }
        clientIdOwner.set(client.id, { key: principalKey(principal), client });
        principals.set(client, principal);
        done(null, true);
      };
      if (username === opts.service.username) {
        if (password === undefined || !sameSecret(password, opts.service.password)) {
          return done(authError('bad service credential', RC_BAD_USERNAME_OR_PASSWORD), false);
        }
        return admit({ kind: 'service' });
      }
      lookupFor(username, opts.registry).then((lookup) => {
        let dev;
        try {
          dev = verifyMqttCredentials(client.id, username, password, lookup, {
            now: opts.now,
            maxSkewMs: opts.maxSkewMs,
            allowedSignMethods: opts.allowedSignMethods,
          });
        } catch (e) {
          return fail(e);
        }
        admit({ kind: 'device', productKey: dev.productKey, deviceName: dev.deviceName });
      }, fail);
    },
    authorizePublish(client, packet, callback) {
      const p = client ? principals.get(client) : undefined;
      const t = parseOtaTopic(packet.topic);
      const ok =
        p !== undefined &&
        t !== null &&
        packet.retain !== true &&
        (p.kind === 'service'
          ? t.kind === 'upgrade'
          : (t.kind === 'inform' || t.kind === 'progress') && t.productKey === p.productKey && t.deviceName === p.deviceName);
      callback(ok ? null : new Error(`publish to ${packet.topic} not allowed`));
    },
    authorizeSubscribe(client, sub, callback) {
      const p = principals.get(client);
      let ok = false;
      if (p?.kind === 'service') {
        ok = sub.topic === otaTopicFilter('inform') || sub.topic === otaTopicFilter('progress');
        if (!ok) {
          const t = parseOtaTopic(sub.topic);
          ok = t !== null && t.kind !== 'upgrade';
        }
      } else if (p?.kind === 'device') {
        const t = parseOtaTopic(sub.topic); // concrete topics only: no wildcards for devices
        ok = t !== null && t.kind === 'upgrade' && t.productKey === p.productKey && t.deviceName === p.deviceName;
      }
      // A null subscription makes aedes answer SUBACK 0x80 (failure) for it.
      callback(null, ok ? sub : null);
    },
    authorizeForward(client, packet) {
      // Defence in depth: even if a subscription slipped through, a device only
      // ever receives its own upgrade topic.
      const p = principals.get(client);
      if (p?.kind !== 'device') return packet;
      const t = parseOtaTopic(packet.topic);
      return t !== null && t.kind === 'upgrade' && t.productKey === p.productKey && t.deviceName === p.deviceName ? packet : null;
    },
  };

  const aedes = await Aedes.createBroker(options);
  aedes.on('clientDisconnect', (client) => {
    if (clientIdOwner.get(client.id)?.client === client) clientIdOwner.delete(client.id);
  });

  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  return {
    url: `mqtt://${host}:${port}`,
    port,
    aedes,
    endDeviceSessions(productKey, deviceName) {
      let n = 0;
      for (const { client } of [...clientIdOwner.values()]) {
        const p = principals.get(client);
        if (p?.kind === 'device' && p.productKey === productKey && p.deviceName === deviceName) {
          client.close();
          n++;
        }
      }
      return n;
    },
    close() {
      closed ??= (async () => {
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closed;
    },
  };
}
