import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { connectAsync, type MqttClient } from 'mqtt';
import { deriveMqttCredentials, MqttAuthError, signContent, verifyMqttCredentials } from '../src/protocol/mqtt-auth.js';
import { DeviceRegistry, RegistryError } from '../src/cloud/device-registry.js';
import { startBroker, type BrokerHandle } from '../src/cloud/broker.js';
import { connectOtaDevice } from '../src/device/mqtt-link.js';
import { connectOtaCloud } from '../src/cloud/mqtt-client.js';
import { buildUpgradeMessage, OtaStep, type UpgradeInfo } from '../src/protocol/messages.js';
import { informTopic, progressTopic, upgradeTopic } from '../src/protocol/topics.js';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSigned } from './helpers/tls.js';
import { SignInGuard } from '../src/protocol/sign-in-guard.js';

const PK = 'a1ProdKey01';
const SERVICE = { username: 'otadiff-cloud', password: 'cloud-service-password-1234' };

describe('MQTT sign-in rule', () => {
  it('matches the published Aliyun example (hmacsha1, clientId 12345, timestamp 789)', () => {
    // Aliyun doc: hmacsha1("secret","clientId12345deviceNamedeviceproductKeypktimestamp789") = FAFD82A3D602B37FB0FA8B7892F24A477F85****
    expect(signContent({ clientId: '12345', deviceName: 'device', productKey: 'pk', timestamp: '789' })).toBe('clientId12345deviceNamedeviceproductKeypktimestamp789');
    const c = deriveMqttCredentials({ productKey: 'pk', deviceName: 'device', deviceSecret: 'secret' }, { clientIdBase: '12345', timestamp: 789, signMethod: 'hmacsha1' });
    expect(c.clientId).toBe('12345|securemode=3,signmethod=hmacsha1,timestamp=789|');
    expect(c.username).toBe('device&pk');
    expect(c.password.toUpperCase().startsWith('FAFD82A3D602B37FB0FA8B7892F24A477F85')).toBe(true);
  });

  it('derives hmacsha256 credentials the verifier accepts, and checks every part', () => {
    const reg = DeviceRegistry.inMemory();
    reg.addProduct(PK);
    const dev = reg.addDevice(PK, 'dev-0001');
    const c = deriveMqttCredentials(dev, { timestamp: 1_700_000_000_000 });
    expect(c.clientId).toBe(`${PK}.dev-0001|securemode=3,signmethod=hmacsha256,timestamp=1700000000000|`);
    expect(c.password).toMatch(/^[0-9a-f]{64}$/);
    expect(verifyMqttCredentials(c.clientId, c.username, c.password, reg)).toMatchObject({ productKey: PK, deviceName: 'dev-0001', timestamp: 1_700_000_000_000 });
    expect(verifyMqttCredentials(c.clientId, c.username, Buffer.from(c.password.toUpperCase()), reg).deviceName).toBe('dev-0001');

    const fail = (f: () => unknown, code: string) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(MqttAuthError);
        expect((e as MqttAuthError).code).toBe(code);
        return;
      }
      throw new Error('expected failure');
    };
    // signed clientId/timestamp are bound into the password
    fail(() => verifyMqttCredentials(c.clientId.replace('1700000000000', '1700000000001'), c.username, c.password, reg), 'BAD_SIGNATURE');
    fail(() => verifyMqttCredentials(c.clientId.replace(`${PK}.dev-0001`, 'other'), c.username, c.password, reg), 'BAD_SIGNATURE');
    fail(() => verifyMqttCredentials(c.clientId, c.username, c.password.replace(/.$/, (x) => (x === '0' ? '1' : '0')), reg), 'BAD_SIGNATURE');
    fail(() => verifyMqttCredentials(c.clientId, 'dev-0002&' + PK, c.password, reg), 'UNKNOWN_DEVICE');
    fail(() => verifyMqttCredentials(c.clientId, 'dev-0001', c.password, reg), 'MALFORMED');
    fail(() => verifyMqttCredentials('no-extension', c.username, c.password, reg), 'MALFORMED');
    fail(() => verifyMqttCredentials(c.clientId.replace('securemode=3', 'securemode=9'), c.username, c.password, reg), 'MALFORMED');
    fail(() => verifyMqttCredentials(c.clientId, c.username, c.password.slice(2), reg), 'BAD_SIGNATURE');
    fail(() => verifyMqttCredentials(c.clientId, c.username, undefined, reg), 'MALFORMED');
    const md5 = deriveMqttCredentials(dev, { signMethod: 'hmacmd5' });
    fail(() => verifyMqttCredentials(md5.clientId, md5.username, md5.password, reg), 'UNSUPPORTED_SIGN_METHOD');
    expect(verifyMqttCredentials(md5.clientId, md5.username, md5.password, reg, { allowedSignMethods: ['hmacmd5'] }).signMethod).toBe('hmacmd5');
    // stale timestamps, with a clock
    const now = () => 1_700_000_000_000 + 10 * 60_000;
    fail(() => verifyMqttCredentials(c.clientId, c.username, c.password, reg, { now, maxSkewMs: 5 * 60_000 }), 'STALE_TIMESTAMP');
    expect(verifyMqttCredentials(c.clientId, c.username, c.password, reg, { now, maxSkewMs: 11 * 60_000 }).deviceName).toBe('dev-0001');
    const noTs = deriveMqttCredentials(dev, { timestamp: null });
    expect(noTs.clientId).not.toContain('timestamp');
    expect(verifyMqttCredentials(noTs.clientId, noTs.username, noTs.password, reg).timestamp).toBeUndefined();
    fail(() => verifyMqttCredentials(noTs.clientId, noTs.username, noTs.password, reg, { now }), 'STALE_TIMESTAMP');
  });
});

describe('device registry', () => {
  it('persists to a JSON file and reloads; validates input', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-reg-'));
    try {
      const path = join(dir, 'registry.json');
      const reg = await DeviceRegistry.open(path);
      reg.addProduct(PK, 'productSecret123');
      const d = reg.addDevice(PK, 'dev-0001');
      expect(d.deviceSecret).toMatch(/^[A-Za-z0-9]{32}$/);
      await reg.save();
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      const again = await DeviceRegistry.open(path);
      expect(again.getDeviceSecret(PK, 'dev-0001')).toBe(d.deviceSecret);
      expect(again.getProduct(PK)?.productSecret).toBe('productSecret123');
      expect(again.listDevices(PK)).toHaveLength(1);
      expect(() => again.addDevice(PK, 'dev-0001')).toThrow(RegistryError);
      expect(() => again.addDevice('nope', 'dev-0002')).toThrow(RegistryError);
      expect(() => again.addDevice(PK, 'a/b/c/d')).toThrow(RegistryError);
      expect(() => again.addDevice(PK, 'dev-0003', 'short')).toThrow(RegistryError);
      expect(again.removeDevice(PK, 'dev-0001')).toBe(true);
      expect(again.getDeviceSecret(PK, 'dev-0001')).toBeUndefined();
      const raw = JSON.parse(await readFile(path, 'utf8'));
      raw.devices.push({ ...raw.devices[0] });
      await import('node:fs/promises').then((fs) => fs.writeFile(path, JSON.stringify(raw)));
      await expect(DeviceRegistry.open(path)).rejects.toThrow(/duplicate/);
      await import('node:fs/promises').then((fs) => fs.writeFile(path, '{"format":"x"}'));
      await expect(DeviceRegistry.open(path)).rejects.toThrow(RegistryError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('embedded broker', () => {
  let broker: BrokerHandle | undefined;
  const clients: MqttClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker?.close();
    broker = undefined;
  });

  async function setup() {
    const registry = DeviceRegistry.inMemory();
    registry.addProduct(PK);
    const a = registry.addDevice(PK, 'dev-aaaa');
    const b = registry.addDevice(PK, 'dev-bbbb');
    broker = await startBroker({ registry, service: SERVICE, signIn: { now: () => Date.now(), windowMs: 60_000 } });
    expect(broker.url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    return { registry, a, b, url: broker.url };
  }

  async function rawDevice(url: string, identity: { productKey: string; deviceName: string; deviceSecret: string }, opts = {}) {
    const c = deriveMqttCredentials(identity, opts);
    const client = await connectAsync(url, { clientId: c.clientId, username: c.username, password: c.password, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  }

  it("a device's report after its broker went away fails at once instead of waiting for ever", async () => {
    const { a } = await setup();
    const device = await connectOtaDevice(broker!.url, a);
    await broker!.close();
    await vi.waitFor(() => expect(device.mqtt.connected).toBe(false));
    await expect(device.reportProgress(10, 'downloading')).rejects.toThrow();
    await expect(device.reportVersion('1.0.0')).rejects.toThrow();
  });

  it('carries inform -> upgrade -> progress between a device and the cloud', async () => {
    const { a, url } = await setup();
    const cloud = await connectOtaCloud(url, SERVICE);
    const device = await connectOtaDevice(url, a);
    try {
      const informs: unknown[] = [];
      const progress: unknown[] = [];
      const gotInform = new Promise<void>((resolve) =>
        cloud.onInform((dev, msg) => {
          informs.push({ dev, msg });
          resolve();
        }),
      );
      const gotProgress = new Promise<void>((resolve) =>
        cloud.onProgress((dev, msg) => {
          progress.push({ dev, msg });
          if (msg.step === 100) resolve();
        }),
      );
      const upgrade: UpgradeInfo = { id: '42', size: 1234, version: '1.1.0', url: 'https://127.0.0.1/fw.bin', signMethod: 'Md5', sign: 'c'.repeat(32), isDiff: 0 };
      const gotUpgrade = new Promise<UpgradeInfo>((resolve) => device.onUpgrade(resolve));

      await device.reportVersion('1.0.0', 'MCU');
      await gotInform;
      expect(informs[0]).toMatchObject({ dev: { productKey: PK, deviceName: 'dev-aaaa' }, msg: { version: '1.0.0', module: 'MCU' } });
      await cloud.pushUpgrade({ productKey: PK, deviceName: 'dev-aaaa' }, upgrade);
      expect(await gotUpgrade).toEqual(upgrade);
      await device.reportProgress(50, 'downloading');
      await device.reportProgress(100, 'done');
      await gotProgress;
      expect(progress.map((p) => (p as { msg: { step: number } }).msg.step)).toEqual([50, 100]);
    } finally {
      await device.close();
      await cloud.close();
    }
  });

  it('refuses a bad secret, an unknown device, a stale timestamp and a bad service password', async () => {
    const { a, url } = await setup();
    await expect(rawDevice(url, { ...a, deviceSecret: 'WrongSecret0000000000000000000000' })).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(rawDevice(url, { ...a, deviceName: 'dev-zzzz' })).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(rawDevice(url, a, { timestamp: Date.now() - 3_600_000 })).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(connectAsync(url, { clientId: 'cloud-x', username: SERVICE.username, password: 'nope', reconnectPeriod: 0 })).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(connectAsync(url, { clientId: 'anon', reconnectPeriod: 0 })).rejects.toThrow(/Bad username or password|Not authorized/i);
  });

  it("denies subscribing to another device's topic and wildcards", async () => {
    const { a, url } = await setup();
    const client = await rawDevice(url, a);
    // mqtt.js 5 turns a SUBACK failure code (0x80) into a rejected promise.
    const refused = async (topic: string) => {
      const err = await client.subscribeAsync(topic, { qos: 1 }).then(() => null, (e: unknown) => e as { packet?: { granted?: number[] } });
      expect(err, topic).not.toBeNull();
      expect(err?.packet?.granted).toEqual([128]);
    };
    await refused(upgradeTopic(PK, 'dev-bbbb'));
    await refused('/ota/device/upgrade/+/+');
    await refused('#');
    await refused(informTopic(PK, 'dev-aaaa')); // a device does not read its own uplink either
    const own = await client.subscribeAsync(upgradeTopic(PK, 'dev-aaaa'), { qos: 1 });
    expect(own[0].qos).toBe(1);
    expect(client.connected).toBe(true);
  });

  it("denies publishing to another device's topic (connection dropped, cloud sees nothing)", async () => {
    const { a, b, url } = await setup();
    const cloud = await connectOtaCloud(url, SERVICE);
    try {
      const seen: string[] = [];
      cloud.onProgress((dev) => void seen.push(dev.deviceName));
      cloud.onInform((dev) => void seen.push(dev.deviceName));
      const mallory = await rawDevice(url, a);
      const closed = new Promise<void>((resolve) => mallory.once('close', () => resolve()));
      mallory.publish(progressTopic(PK, 'dev-bbbb'), '{"id":"1","params":{"step":"-1","desc":"forged"}}', { qos: 0 });
      await closed;
      // A forged upgrade notice to a device is refused the same way.
      const mallory2 = await rawDevice(url, a);
      const closed2 = new Promise<void>((resolve) => mallory2.once('close', () => resolve()));
      mallory2.publish(upgradeTopic(PK, 'dev-bbbb'), buildUpgradeMessage({ id: '1', size: 1, version: '9.9', url: 'http://evil.test/x', signMethod: 'Md5', sign: 'd'.repeat(32), isDiff: 0 }));
      await closed2;
      // The honest device's own report still flows.
      const honest = await connectOtaDevice(url, b);
      const got = new Promise<void>((resolve) => cloud.onProgress((_d, m) => void (m.step === OtaStep.DOWNLOAD_FAILED && resolve())));
      await honest.reportProgress(OtaStep.DOWNLOAD_FAILED, 'net');
      await got;
      await honest.close();
      expect(seen).toEqual(['dev-bbbb']);
    } finally {
      await cloud.close();
    }
  });

  it('a device cannot publish a notice, not even to itself, and no notice can be left retained', async () => {
    const { a, url } = await setup();
    const topic = upgradeTopic(PK, 'dev-aaaa');
    const forged = buildUpgradeMessage({ id: '666', size: 1, version: '9.9', url: 'http://evil.test/x', signMethod: 'Md5', sign: 'd'.repeat(32), isDiff: 0 });
    const firstMessage = async (c: MqttClient): Promise<string> => {
      const got = new Promise<string>((resolve) => c.once('message', (_t, payload) => resolve(payload.toString())));
      await c.subscribeAsync(topic, { qos: 1 });
      return got.then((m) => String((JSON.parse(m) as { id: unknown }).id));
    };
    const listening = firstMessage(await rawDevice(url, a, { clientIdBase: 'a-listener' }));
    // Another connection of the same device publishes a notice to it: dropped.
    const forger = await rawDevice(url, a, { clientIdBase: 'a-forger' });
    const forgerClosed = new Promise<void>((resolve) => forger.once('close', () => resolve()));
    forger.publish(topic, forged, { qos: 0 });
    await forgerClosed;
    // The cloud's credential may push notices, but never a retained one that would greet every later subscriber.
    const svc = await connectAsync(url, { clientId: 'cloud-retain', username: SERVICE.username, password: SERVICE.password, reconnectPeriod: 0 });
    clients.push(svc);
    const svcClosed = new Promise<void>((resolve) => svc.once('close', () => resolve()));
    svc.publish(topic, forged, { qos: 0, retain: true });
    await svcClosed;
    // A device subscribing afterwards gets no retained notice: the first message either one sees is the next live notice.
    const late = firstMessage(await rawDevice(url, a, { clientIdBase: 'a-late' }));
    const cloud = await connectOtaCloud(url, SERVICE);
    try {
      await cloud.pushUpgrade({ productKey: PK, deviceName: 'dev-aaaa' }, { id: '7', size: 10, version: '1.1', url: 'http://127.0.0.1/fw.bin', signMethod: 'Md5', sign: 'c'.repeat(32), isDiff: 0 });
      expect(await listening).toBe('7');
      expect(await late).toBe('7');
    } finally {
      await cloud.close();
    }
  });

  it('does not let one device take over another device client id', async () => {
    const { a, b, url } = await setup();
    const timestamp = Date.now(); // same timestamp => identical MQTT client ids
    const first = await rawDevice(url, a, { clientIdBase: 'shared-id', timestamp });
    await expect(rawDevice(url, b, { clientIdBase: 'shared-id', timestamp })).rejects.toThrow(/Identifier rejected/i);
    expect(first.connected).toBe(true);
    // The same sign-in again is a replay, even from its owner: refused, and the first stays connected.
    await expect(rawDevice(url, a, { clientIdBase: 'shared-id', timestamp })).rejects.toThrow(/bad user ?name or password/i);
    expect(first.connected).toBe(true);
    // The owner signs in anew (a new timestamp) after a network loss.
    const again = await rawDevice(url, a, { clientIdBase: 'shared-id', timestamp: timestamp + 1 });
    expect(again.connected).toBe(true);
  });

  it('refuses a replayed CONNECT and a sign-in outside the clock window (±15 min by default)', async () => {
    const registry = DeviceRegistry.inMemory();
    registry.addProduct(PK);
    const a = registry.addDevice(PK, 'dev-aaaa');
    let clock = 1_800_000_000_000;
    broker = await startBroker({ registry, service: SERVICE, signIn: { now: () => clock } });
    const url = broker.url;
    const first = await rawDevice(url, a, { timestamp: clock - 60_000 });
    expect(first.connected).toBe(true);
    // A captured CONNECT sent again, while the first connection lives and after it closed.
    await expect(rawDevice(url, a, { timestamp: clock - 60_000 })).rejects.toThrow(/bad user ?name or password/i);
    await first.endAsync();
    await expect(rawDevice(url, a, { timestamp: clock - 60_000 })).rejects.toThrow(/bad user ?name or password/i);
    // Timestamps beyond the window either way, and none at all.
    await expect(rawDevice(url, a, { timestamp: clock - 16 * 60_000 })).rejects.toThrow(/bad user ?name or password/i);
    await expect(rawDevice(url, a, { timestamp: clock + 16 * 60_000 })).rejects.toThrow(/bad user ?name or password/i);
    await expect(rawDevice(url, a, { timestamp: null })).rejects.toThrow(/bad user ?name or password/i);
    expect((await rawDevice(url, a, { timestamp: clock + 14 * 60_000 })).connected).toBe(true);
    // Once the clock has moved past the window, the old sign-in is stale and forgotten.
    clock += 40 * 60_000;
    await expect(rawDevice(url, a, { timestamp: clock - 60_000 - 40 * 60_000 })).rejects.toThrow(/bad user ?name or password/i);
    expect((await rawDevice(url, a, { timestamp: clock })).connected).toBe(true);
  });

  it('securemode=2 (TLS) is refused on plain TCP and accepted over TLS; devices wait for the cloud', async () => {
    const registry = DeviceRegistry.inMemory();
    registry.addProduct(PK);
    const a = registry.addDevice(PK, 'dev-aaaa');
    const { key, cert } = selfSigned();
    broker = await startBroker({ registry, service: SERVICE, tls: { key, cert }, closedToDevices: true });
    expect(broker.tlsUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    // Until the cloud opens the broker to devices: "server unavailable".
    await expect(rawDevice(broker.url, a)).rejects.toThrow(/unavailable/i);
    broker.openToDevices();
    await expect(rawDevice(broker.url, a, { secureMode: 2 })).rejects.toThrow(/bad user ?name or password/i);
    // Each sign-in its own timestamp: securemode is not signed, so two in one millisecond are one sign-in (a replay).
    expect((await rawDevice(broker.url, a, { secureMode: 3, timestamp: Date.now() - 2000 })).connected).toBe(true);
    const c = deriveMqttCredentials(a, { secureMode: 2, timestamp: Date.now() - 1000 });
    const tls = await connectAsync(broker.tlsUrl!, { clientId: c.clientId, username: c.username, password: c.password, reconnectPeriod: 0, ca: cert });
    clients.push(tls);
    expect(tls.connected).toBe(true);
    // The OTA device client picks securemode=2 for an mqtts:// URL.
    const device = await connectOtaDevice(broker.tlsUrl!, a, { ca: cert });
    await device.reportVersion('1.0.0');
    await device.close();
  });
});

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

describe('sign-in guard', () => {
  it('remembers sign-ins for two windows, then forgets them; a flood past its bound is refused, not stored', () => {
    let now = 1_000_000_000;
    const g = new SignInGuard({ now: () => now, windowMs: 1000, maxEntries: 3 });
    expect(g.admit('p/a', now, 'aa')).toEqual({ ok: true });
    expect(g.admit('p/a', now, 'AA')).toMatchObject({ ok: false, code: 'REPLAYED' }); // hex case does not make it new
    expect(g.admit('p/b', now, 'aa')).toEqual({ ok: true }); // another device, the same bytes: its own sign-in
    expect(g.admit('p/a', now + 1001, 'bb')).toMatchObject({ ok: false, code: 'STALE_TIMESTAMP' });
    expect(g.admit('p/a', undefined, 'cc')).toMatchObject({ ok: false, code: 'STALE_TIMESTAMP' });
    expect(g.admit('p/c', now, 'cc')).toEqual({ ok: true });
    expect(g.admit('p/d', now, 'dd')).toMatchObject({ ok: false, code: 'REPLAYED', message: expect.stringMatching(/too many/) });
    expect(g.size).toBe(3);
    now += 2001;
    expect(g.admit('p/d', now, 'dd')).toEqual({ ok: true });
    expect(g.size).toBe(1);
  });
});
