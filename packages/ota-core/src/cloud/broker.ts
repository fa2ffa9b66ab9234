// Embedded MQTT broker (aedes) speaking the Aliyun OTA topic set.
// Devices sign in with Aliyun-style credentials and may only publish their own
// inform/progress topics and subscribe to their own upgrade topic. The cloud
// process signs in with a separate service credential and may subscribe to
// everyone's inform/progress topics and publish anyone's upgrade topic.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { MqttAuthError, verifyMqttCredentials, type MqttSignMethod, type ServiceCredential } from '../protocol/mqtt-auth.js';
import { otaTopicFilter, parseOtaTopic } from '../protocol/topics.js';
import { SignInGuard, type SignInGuardOptions } from '../protocol/sign-in-guard.js';
import { lookupFor, type AsyncDeviceSecretLookup } from './secret-lookup.js';

export interface BrokerOptions {
  registry: AsyncDeviceSecretLookup;
  /** The cloud's own sign-in. */
  service: ServiceCredential;
  port?: number;
  host?: string;
  /**
   * MQTT over TLS on this port too (0 = any free port), with this key and certificate (PEM). A device
   * that claims TLS (securemode=2) is refused on the plain port.
   */
  tls?: { port?: number; key: string | Buffer; cert: string | Buffer };
  /** Refuse devices (CONNACK "server unavailable") until openToDevices(): the cloud's client comes first. */
  closedToDevices?: boolean;
  /** Sign-in freshness: the timestamp window and the replay check (a guard, or its options: clock, window). */
  signIn?: SignInGuard | SignInGuardOptions;
  allowedSignMethods?: readonly MqttSignMethod[];
}

export interface BrokerHandle {
  url: string;
  port: number;
  /** mqtts:// URL and port of the TLS listener, when there is one. */
  tlsUrl?: string;
  tlsPort?: number;
  aedes: Aedes;
  /** Lets devices sign in (after a start with closedToDevices). */
  openToDevices(): void;
  /** Disconnects every live session of the device (it was removed or its secret rotated); returns how many. */
  endDeviceSessions(productKey: string, deviceName: string): number;
  close(): Promise<void>;
}

type Principal =
  | { kind: 'device'; productKey: string; deviceName: string }
  | { kind: 'service' };

// Aedes' CONNACK return codes (MQTT 3.1.1 table 3.1).
const RC_IDENTIFIER_REJECTED = 2;
const RC_SERVER_UNAVAILABLE = 3;
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

const passwordText = (p: string | Buffer | undefined): string => (p === undefined ? '' : typeof p === 'string' ? p : p.toString('latin1'));

const principalKey = (p: Principal): string => (p.kind === 'service' ? 'service' : `${p.productKey}/${p.deviceName}`);

export async function startBroker(opts: BrokerOptions): Promise<BrokerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const principals = new WeakMap<Client, Principal>();
  // clientId -> principal key of its current holder: a device must not be able
  // to kick another device off by reusing its client id.
  const clientIdOwner = new Map<string, { key: string; client: Client }>();
  let openForDevices = opts.closedToDevices !== true;
  const guard = opts.signIn instanceof SignInGuard ? opts.signIn : new SignInGuard(opts.signIn);
  // Sockets accepted by the TLS listener: only there may a device claim TLS (securemode=2).
  const overTls = new WeakSet<object>();

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
      if (!openForDevices) return done(authError('the cloud is starting: try again', RC_SERVER_UNAVAILABLE), false);
      lookupFor(username, opts.registry).then((lookup) => {
        let dev;
        try {
          dev = verifyMqttCredentials(client.id, username, password, lookup, { allowedSignMethods: opts.allowedSignMethods });
          if (dev.secureMode === 2 && !overTls.has(client.conn as object))
            throw new MqttAuthError('MALFORMED', 'securemode=2 claims TLS, but this connection is plain TCP: connect to the TLS port');
          const fresh = guard.admit(`${dev.productKey}/${dev.deviceName}`, dev.timestamp, passwordText(password));
          if (!fresh.ok) throw new MqttAuthError(fresh.code, fresh.message);
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
  const accept = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  };
  const server: Server = createServer(accept);
  const tlsServer =
    opts.tls === undefined
      ? undefined
      : createTlsServer({ key: opts.tls.key, cert: opts.tls.cert }, (socket) => {
          overTls.add(socket);
          accept(socket);
        });
  // A failed TLS handshake is the peer's problem, not the broker's.
  tlsServer?.on('tlsClientError', () => {});
  const listen = (srv: Server, p: number): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(p, host, () => {
        srv.off('error', reject);
        resolve((srv.address() as AddressInfo).port);
      });
    });
  const port = await listen(server, opts.port ?? 0);
  const tlsPort =
    tlsServer === undefined
      ? undefined
      : await listen(tlsServer, opts.tls!.port ?? 0).catch(async (e: unknown) => {
          await new Promise<void>((resolve) => server.close(() => resolve()));
          throw e;
        });

  let closed: Promise<void> | undefined;
  return {
    url: `mqtt://${host}:${port}`,
    port,
    ...(tlsPort === undefined ? {} : { tlsUrl: `mqtts://${host}:${tlsPort}`, tlsPort }),
    aedes,
    openToDevices() {
      openForDevices = true;
    },
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
        if (tlsServer !== undefined) await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
      })();
      return closed;
    },
  };
}
