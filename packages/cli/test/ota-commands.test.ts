import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudStore } from '@otadiff/ota-core';
import { generateKeyPair } from '@otadiff/diff-gen';
import { addDeviceCommand, addFirmwareCommand, addProductCommand, jobCommand, serveCommand, type ServeOptions } from '../src/commands/serve.js';
import { deviceCommand, type DeviceOptions } from '../src/commands/device.js';
import { versionFromName } from '../src/commands/demo.js';
import { CliError } from '../src/size-arg.js';
import { main } from '../src/main.js';
import { findMosquitto, startMosquitto } from '../../ota-core/test/helpers/mosquitto.js';

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

let dir = '';
afterEach(async () => {
  vi.restoreAllMocks();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

const until = async (cond: () => boolean, ms = 20_000): Promise<void> => {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Admin subcommands, a running `serve` and a `device --once` that completes one diff update. */
async function serveAndUpdate(variant: {
  serve?: Partial<ServeOptions>;
  device?: Partial<DeviceOptions>;
  job?: { downloadProtocol?: string };
  coap?: boolean;
  /** The server signs with one key; the device trusts it ('same') or another one ('other'). */
  sign?: 'same' | 'other';
}) {
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-ota-'));
  const data = join(dir, 'data');
  const v1 = bytes(80_000, 1);
  const v2 = v1.slice();
  v2.set(bytes(3000, 2), 40_000);
  await writeFile(join(dir, 'v1.bin'), v1);
  await writeFile(join(dir, 'v2.bin'), v2);
  await addProductCommand({ data, productKey: 'a1Cli', mode: 'inplace', splitSize: '16K' });
  await addDeviceCommand({ data, productKey: 'a1Cli', deviceName: 'cli-dev-1', deviceSecret: 'cli-secret-0001' });
  await addFirmwareCommand(join(dir, 'v1.bin'), { data, productKey: 'a1Cli', version: '1.0.0' });
  await addFirmwareCommand(join(dir, 'v2.bin'), { data, productKey: 'a1Cli', version: '1.1.0', securityCounter: '3' });
  await expect(addFirmwareCommand(join(dir, 'v2.bin'), { data, productKey: 'a1Cli', version: '1.1.0' })).rejects.toThrow(CliError);
  await expect(addFirmwareCommand(join(dir, 'v2.bin'), { data, productKey: 'a1Cli', version: '1.2.0', securityCounter: '-1' })).rejects.toThrow(/--security-counter must be an integer/);
  await expect(addFirmwareCommand(join(dir, 'v2.bin'), { data, productKey: 'a1Cli', version: '1.2.0', securityCounter: '2' })).rejects.toThrow(/below the 3 of the older 1\.1\.0/);
  const signing: { serve?: Partial<ServeOptions>; device?: Partial<DeviceOptions> } = {};
  if (variant.sign !== undefined) {
    const owner = generateKeyPair('ed25519');
    const other = generateKeyPair('ecdsa-p256');
    await writeFile(join(dir, 'fw.key'), owner.privateKey);
    await writeFile(join(dir, 'fw.pub'), variant.sign === 'same' ? owner.publicKey : other.publicKey);
    signing.serve = { signKey: join(dir, 'fw.key') };
    signing.device = { pubkey: [join(dir, 'fw.pub')] };
  }
  await expect(jobCommand({ data, productKey: 'a1Cli', version: '9.9.9' })).rejects.toThrow(/no firmware 9\.9\.9/);

  const serverLines: string[] = [];
  const stopServer = new AbortController();
  const server = serveCommand({ data, port: '0', httpPort: '0', coapPort: '0', ...signing.serve, ...variant.serve }, { signal: stopServer.signal, out: (l) => serverLines.push(l) });
  await until(() => serverLines.some((l) => l.includes('MQTT')));
  const scheme = variant.coap ? /coap:\/\/127\.0\.0\.1:\d+/ : /mqtt:\/\/127\.0\.0\.1:\d+/;
  const broker = scheme.exec(serverLines.join('\n'))![0];

  const deviceLines: string[] = [];
  const device = deviceCommand(
    { productKey: 'a1Cli', deviceName: 'cli-dev-1', deviceSecret: 'cli-secret-0001', flash: join(dir, 'flash'), image: join(dir, 'v1.bin'), version: '1.0.0', broker, splitSize: '16K', once: true, ...signing.device, ...variant.device },
    { out: (l) => deviceLines.push(l) },
  );
  try {
    await until(() => deviceLines.some((l) => l.includes('running 1.0.0')));
    // The job file is picked up by the running server's poll.
    await jobCommand({ data, productKey: 'a1Cli', version: '1.1.0', ...variant.job });
    if (variant.sign === 'other') {
      // --once: the refusal ends the device with an error; nothing was handed over.
      await expect(device).rejects.toThrow(/refused: the package's ed25519 signature does not verify with any trusted key/);
      return { deviceLines, serverLines };
    }
    await device; // --once: returns after the update
    expect(deviceLines.some((l) => l.includes('package header OK'))).toBe(true);
    expect(deviceLines.some((l) => l.includes('boot: new image in slot A, trial boot 1'))).toBe(true);
    expect(deviceLines.at(-1)).toMatch(/running 1\.1\.0, reported to the cloud/);
    await until(() => serverLines.some((l) => l.includes('done, running 1.1.0')));
  } finally {
    stopServer.abort();
    await server;
  }
  const store = await CloudStore.open(data);
  const status = await store.status();
  await store.close();
  expect(status.devices[0]).toMatchObject({ deviceName: 'cli-dev-1', version: '1.1.0', job: { state: 'succeeded', isDiff: true } });
  expect(serverLines.at(-1)).toBe('stopped');
  return { deviceLines, serverLines };
}

describe('otadiff serve + otadiff device', () => {
  it('admin subcommands, a running server and a --once device complete an update', async () => {
    await serveAndUpdate({});
  });

  it('the same with notices and the download over CoAP (--transport coap, --protocol coap, job --download-protocol coap)', async () => {
    const { deviceLines } = await serveAndUpdate({ coap: true, device: { transport: 'coap', protocol: 'coap' }, job: { downloadProtocol: 'coap' } });
    expect(deviceLines.join('\n')).toMatch(/coap:\/\//);
  });

  it('serve --sign-key and device --pubkey: a signed update, checked by the service and the bootloader', async () => {
    const { deviceLines, serverLines } = await serveAndUpdate({ sign: 'same' });
    expect(serverLines.some((l) => /packages signed with the ed25519 key .*fw\.key/.test(l))).toBe(true);
    expect(deviceLines.some((l) => l.includes('trusting 1 package signing key(s) (ed25519)'))).toBe(true);
    expect(deviceLines.some((l) => /package header OK: inplace diff .*version 1\.1\.0, security counter 3; ed25519 signature OK/.test(l))).toBe(true);
    expect(deviceLines.some((l) => /verified in flash .*ed25519 signature and payload SHA-256/.test(l))).toBe(true);
  });

  it('device --pubkey refuses what another key signed', async () => {
    const { deviceLines } = await serveAndUpdate({ sign: 'other' });
    expect(deviceLines.some((l) => /update failed \(-3\): refused: the package's ed25519 signature does not verify/.test(l))).toBe(true);
    expect(deviceLines.some((l) => l.includes('set_boot'))).toBe(false);
  });

  it('device --pubkey with a file that holds no public key is a usage error', async () => {
    dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-ota-'));
    await writeFile(join(dir, 'v1.bin'), bytes(5000, 4));
    await writeFile(join(dir, 'bad.pub'), 'not a key');
    const base = { productKey: 'a1X', deviceName: 'dev-0001', deviceSecret: 'x', flash: join(dir, 'f'), image: join(dir, 'v1.bin'), version: '1.0.0' };
    await expect(deviceCommand({ ...base, pubkey: [join(dir, 'bad.pub')] })).rejects.toThrow(/bad\.pub: no "BEGIN PUBLIC KEY" block/);
    await expect(deviceCommand({ ...base, pubkey: [join(dir, 'missing.pub')] })).rejects.toThrow(/cannot read the public key/);
  });

  it("serve reads an external broker's password from a file or $OTADIFF_BROKER_PASSWORD, never from the URL", async () => {
    dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-ota-'));
    const data = join(dir, 'data');
    const base: ServeOptions = { data, port: '0', httpPort: '0', coapPort: '0', quiet: true };
    await expect(serveCommand({ ...base, broker: 'mqtt://cloud:s3cret@127.0.0.1:1' })).rejects.toThrow(/must not carry a password .*process list/);
    await expect(serveCommand({ ...base, broker: 'mqtt://cloud@127.0.0.1:1', brokerPasswordFile: join(dir, 'none') })).rejects.toThrow(/cannot read --broker-password-file .*no such file/);
    await expect(serveCommand({ ...base, brokerPasswordFile: join(dir, 'none') })).rejects.toThrow(/goes with --broker/);
    await expect(serveCommand({ ...base, mqttTlsPort: '0' })).rejects.toThrow(/--mqtt-tls-port needs --tls-key and --tls-cert/);
    const bin = findMosquitto();
    if (bin === undefined) return; // .ci/run installs mosquitto; the refusals above need none
    const mosq = await startMosquitto(bin, { users: { cloud: 'right horse battery' } });
    const url = mosq.url.replace('mqtt://', 'mqtt://cloud@');
    try {
      await writeFile(join(dir, 'pw'), 'right horse battery\n');
      const lines: string[] = [];
      const stop = new AbortController();
      const running = serveCommand({ ...base, broker: url, brokerPasswordFile: join(dir, 'pw') }, { signal: stop.signal, out: (l) => lines.push(l) });
      await until(() => lines.some((l) => /Ctrl-C stops/.test(l)));
      expect(lines.join('\n')).not.toContain('right horse');
      stop.abort();
      await running;
      await writeFile(join(dir, 'pw'), 'wrong\n');
      await expect(serveCommand({ ...base, broker: url, brokerPasswordFile: join(dir, 'pw') })).rejects.toThrow(/cannot start the cloud/);
      vi.stubEnv('OTADIFF_BROKER_PASSWORD', 'right horse battery');
      const stop2 = new AbortController();
      const lines2: string[] = [];
      const again = serveCommand({ ...base, broker: url }, { signal: stop2.signal, out: (l) => lines2.push(l) });
      await until(() => lines2.some((l) => /Ctrl-C stops/.test(l)));
      stop2.abort();
      await again;
    } finally {
      vi.unstubAllEnvs();
      await mosq.close();
    }
  }, 60_000);

  it('device refuses to start without an identity or a flash image', async () => {
    dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-ota-'));
    await expect(deviceCommand({ config: join(dir, 'missing.json'), flash: join(dir, 'f') })).rejects.toThrow(/device config/);
    await expect(deviceCommand({ productKey: 'a1X', deviceName: 'dev-0001', deviceSecret: 'x', flash: join(dir, 'f') })).rejects.toThrow(/--image FILE and --version V/);
  });

  it("parses 'serve add-firmware --version V' as a firmware version, not the tool's --version", async () => {
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-ota-'));
    const data = join(dir, 'data');
    await writeFile(join(dir, 'fw.bin'), bytes(5000, 3));
    const run = (...args: string[]) => main(['node', 'otadiff', ...args]);
    expect(await run('serve', '--data', data, 'add-product', '--product-key', 'a1Argv')).toBe(0);
    expect(await run('serve', 'add-firmware', '--product-key', 'a1Argv', '--version', '1.2.3', join(dir, 'fw.bin'), '--data', data)).toBe(0);
    const store = await CloudStore.open(data);
    try {
      expect(await store.firmwareVersions('a1Argv')).toEqual(['1.2.3']);
      expect(await run('serve', 'add-firmware', '--product-key', 'a1Argv', '--version', '1.2.4', '--security-counter', '5', '--allow-downgrade', join(dir, 'fw.bin'), '--data', data)).toBe(0);
      expect(await store.firmwareRelease('a1Argv', '1.2.4')).toEqual({ version: '1.2.4', securityCounter: 5, allowDowngrade: true });
    } finally {
      await store.close();
    }
  });

  it('takes versions from corpus file names', () => {
    expect(versionFromName('/x/at-v3.0.4.bin')).toBe('3.0.4');
    expect(versionFromName('fw-1.2.3-rc.1.bin')).toBe('1.2.3-rc.1');
    expect(versionFromName('firmware.bin')).toBeUndefined();
  });
});
