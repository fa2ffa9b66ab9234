// `otadiff serve` (the cloud in one process) and its small admin subcommands, which
// edit the data directory; a running server picks their changes up within a second.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { CloudStore, CloudStoreError, startOtaCloud, type PackageMode } from '@otadiff/ota-core';
import { algorithmOf } from '@otadiff/diff-gen';
import { readInput } from '../files.js';
import { loadSigningKey as loadPackageKey } from './keys.js';
import { parseSecurityCounter } from '../counter-arg.js';
import { CliError, formatBytes, parseSize } from '../size-arg.js';
import { untilStopped, type Out, stdout } from './run-until.js';

export const DEFAULT_DATA_DIR = 'otadiff-data'; // also in ota.ts (kept import-free)

function port(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new CliError(`${what} must be a port number 0..65535, not "${text}"`);
  return Number(text);
}

async function openStore(data: string | undefined): Promise<CloudStore> {
  try {
    return await CloudStore.open(resolve(data ?? DEFAULT_DATA_DIR));
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** Store errors are the user's input: show them as `error: …`. */
async function store<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CloudStoreError || (e as Error).name === 'RegistryError') throw new CliError((e as Error).message);
    throw e;
  }
}

export interface ServeOptions {
  data?: string;
  host?: string;
  port?: string;
  httpPort?: string;
  publicHost?: string;
  broker?: string;
  signingKey?: string;
  /** Private key (PEM) that signs every package the cloud makes (diffs and raw packages). */
  signKey?: string;
  urlTtl?: string;
  coapPort?: string;
  downloadProtocol?: string;
  tlsKey?: string;
  tlsCert?: string;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

function downloadProtocolOf(v: string | undefined): 'http' | 'coap' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'http' && v !== 'coap') throw new CliError(`--download-protocol must be http or coap, not "${v}"`);
  return v;
}

function loadSigningKey(path: string): KeyObject {
  try {
    return createPrivateKey(readFileSync(path));
  } catch (e) {
    throw new CliError(`cannot use ${path} as an RSA private key: ${(e as Error).message}`);
  }
}

export async function serveCommand(opts: ServeOptions, run: { signal?: AbortSignal; out?: Out } = {}): Promise<void> {
  const out = run.out ?? stdout;
  const dataDir = resolve(opts.data ?? DEFAULT_DATA_DIR);
  if (opts.broker !== undefined && !/^mqtts?:\/\/\S+$/.test(opts.broker)) throw new CliError('--broker must be an mqtt:// or mqtts:// URL');
  const ttl = opts.urlTtl === undefined ? 3600 : Number(opts.urlTtl);
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new CliError('--url-ttl must be a positive number of seconds');
  const signingKey = opts.signingKey === undefined ? undefined : loadSigningKey(opts.signingKey);
  const packageKey = opts.signKey === undefined ? undefined : loadPackageKey(opts.signKey);
  if ((opts.tlsKey === undefined) !== (opts.tlsCert === undefined)) throw new CliError('--tls-key and --tls-cert go together');
  const tls = opts.tlsKey === undefined ? undefined : { key: readPem(opts.tlsKey, 'TLS key'), cert: readPem(opts.tlsCert!, 'TLS certificate') };
  const stamp = (): string => new Date().toISOString().slice(11, 23);
  const cloud = await startOtaCloud({
    dataDir,
    host: opts.host ?? '127.0.0.1',
    mqttPort: port(opts.port, 1883, '--port'),
    httpPort: port(opts.httpPort, 8080, '--http-port'),
    coapPort: port(opts.coapPort, 5683, '--coap-port'),
    downloadProtocol: downloadProtocolOf(opts.downloadProtocol),
    tls,
    publicHost: opts.publicHost,
    broker: opts.broker,
    urlTtlMs: ttl * 1000,
    signingKey,
    packageSigningKey: packageKey,
    log: (line) => out(`${stamp()} ${line}`),
  }).catch((e: unknown) => {
    throw new CliError(`cannot start the cloud: ${(e as Error).message}`);
  });
  out(`otadiff cloud, data ${dataDir}`);
  out(`  MQTT   ${cloud.brokerUrl}${opts.broker === undefined ? ' (embedded broker, Aliyun device sign-in)' : ' (external broker)'}`);
  out(`  files  ${cloud.files.url} (signed URLs valid ${ttl} s${signingKey ? ', RSA digestsign' : ''}), CoAP ${cloud.coap.url}`);
  out(
    packageKey === undefined
      ? '  packages unsigned (no --sign-key): devices that trust a key (device --pubkey) refuse them'
      : `  packages signed with the ${algorithmOf(packageKey)} key ${opts.signKey} (firmware version and security counter in the signed header)`,
  );
  const products = cloud.store.productList();
  out(`  ${products.length} product(s), ${cloud.store.registry.listDevices().length} device(s), ${cloud.store.jobs().length} job(s); Ctrl-C stops`);
  try {
    await untilStopped(run.signal);
  } finally {
    await cloud.close();
    out('stopped');
  }
}

export interface DataOption {
  data?: string;
}

export async function addProductCommand(opts: DataOption & { productKey: string; productSecret?: string; mode?: string; splitSize?: string; dictSize?: string; json?: boolean }): Promise<void> {
  const mode = (opts.mode ?? 'inplace') as PackageMode;
  if (mode !== 'inplace' && mode !== 'ab' && mode !== 'full') throw new CliError(`--mode must be inplace, ab or full, not "${opts.mode}"`);
  const s = await openStore(opts.data);
  const p = await store(() =>
    s.addProduct(opts.productKey, {
      productSecret: opts.productSecret,
      mode,
      splitSize: parseSize(opts.splitSize ?? '64K'),
      dictSize: parseSize(opts.dictSize ?? '16K'),
    }),
  );
  if (opts.json) stdout(JSON.stringify(p));
  else stdout(`product ${p.productKey}: ${mode === 'full' ? 'full images' : `${mode} diffs, split ${formatBytes(p.config.splitSize)}`}, productSecret ${p.productSecret}`);
}

export async function addDeviceCommand(opts: DataOption & { productKey: string; deviceName: string; deviceSecret?: string; json?: boolean }): Promise<void> {
  const s = await openStore(opts.data);
  const d = await store(() => s.addDevice(opts.productKey, opts.deviceName, opts.deviceSecret));
  if (opts.json) stdout(JSON.stringify(d));
  else {
    stdout(`device ${d.productKey}/${d.deviceName}, deviceSecret ${d.deviceSecret}`);
    stdout(`run it: otadiff device --product-key ${d.productKey} --device-name ${d.deviceName} --device-secret ${d.deviceSecret} --flash DIR --image FILE --version V`);
  }
}

export async function addFirmwareCommand(
  file: string,
  opts: DataOption & { productKey: string; version: string; securityCounter?: string; allowDowngrade?: boolean; json?: boolean },
): Promise<void> {
  const securityCounter = opts.securityCounter === undefined ? undefined : parseSecurityCounter(opts.securityCounter);
  const image = readInput(file, 'firmware');
  const s = await openStore(opts.data);
  const r = await store(() => s.addFirmware(opts.productKey, opts.version, image, { securityCounter, allowDowngrade: opts.allowDowngrade === true }));
  if (opts.json) stdout(JSON.stringify({ productKey: opts.productKey, version: opts.version, ...r }));
  else stdout(`${opts.productKey} ${opts.version}: ${formatBytes(r.size)}, SHA-256 ${r.sha256}, security counter ${r.securityCounter}${r.allowDowngrade ? ', allows a downgrade' : ''}`);
}

export async function jobCommand(opts: DataOption & { productKey: string; version: string; deviceName?: string[]; downloadProtocol?: string; json?: boolean }): Promise<void> {
  const s = await openStore(opts.data);
  const j = await store(() => s.createJob({ productKey: opts.productKey, version: opts.version, devices: opts.deviceName, downloadProtocol: downloadProtocolOf(opts.downloadProtocol) }));
  if (opts.json) stdout(JSON.stringify(j));
  else stdout(`job ${j.id}: ${j.productKey} -> ${j.version} for ${j.devices === 'all' ? 'all devices' : j.devices.join(', ')} (a running server pushes it)`);
}

export async function statusCommand(opts: DataOption & { json?: boolean }): Promise<void> {
  const s = await openStore(opts.data);
  const st = s.readStatus();
  if (opts.json) {
    const firmware = Object.fromEntries(s.productList().map((p) => [p.productKey, s.firmwareReleases(p.productKey)]));
    stdout(JSON.stringify({ products: s.productList(), firmware, jobs: s.jobs(), devices: st.devices }));
    return;
  }
  for (const p of s.productList()) {
    const fw = s.firmwareReleases(p.productKey).map((r) => `${r.version} (counter ${r.securityCounter}${r.allowDowngrade ? ', downgrade allowed' : ''})`);
    stdout(`product ${p.productKey} (${p.mode}): firmware ${fw.join(', ') || '-'}`);
  }
  for (const j of s.jobs()) stdout(`job ${j.id}: ${j.productKey} -> ${j.version} for ${j.devices === 'all' ? 'all' : j.devices.join(', ')}`);
  const seen = new Map(st.devices.map((d) => [`${d.productKey}/${d.deviceName}`, d]));
  for (const d of s.registry.listDevices()) {
    const x = seen.get(`${d.productKey}/${d.deviceName}`);
    const job = x?.job ? `, job ${x.job.version}: ${x.job.state}${x.job.step !== undefined ? ` (${x.job.step}${x.job.desc ? ` ${x.job.desc}` : ''})` : ''}` : '';
    stdout(`device ${d.productKey}/${d.deviceName}: ${x?.version ?? 'never seen'}${job}`);
  }
}
