// `otadiff serve` (one cloud worker) and its small admin subcommands: each is one transaction on
// the database (SQLite in the data directory, or PostgreSQL with --db), so they are safe to run
// while serve runs and at the same time as each other; a running server picks their changes up.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { userInfo } from 'node:os';
import { CloudStore, CloudStoreError, importJsonDir, redactUrl, runOperation, ServiceError, startOtaCloud, type Actor, type OperationName, type PackageMode } from '@otadiff/ota-core';
import { algorithmOf } from '@otadiff/diff-gen';
import { readInput } from '../files.js';
import { loadSigningKey as loadPackageKey } from './keys.js';
import { parseSecurityCounter } from '../counter-arg.js';
import { parseUrlTtl } from '../url-ttl-arg.js';
import { CliError, formatBytes, parseSize } from '../size-arg.js';
import { untilStopped, type Out, stdout } from './run-until.js';

export const DEFAULT_DATA_DIR = 'otadiff-data'; // also in ota.ts (kept import-free)

function port(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new CliError(`${what} must be a port number 0..65535, not "${text}"`);
  return Number(text);
}

async function openStore(w: DataOption, o: { importJson?: boolean } = {}): Promise<CloudStore> {
  try {
    return await CloudStore.open(resolve(w.data ?? DEFAULT_DATA_DIR), { db: w.db, importJson: o.importJson, log: (l) => process.stderr.write(`${l}\n`) });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** Whoever runs the CLI on the machine holding the database is its administrator (the audit log names them). */
export function cliActor(): Actor {
  let name = 'unknown';
  try {
    name = userInfo().username;
  } catch {
    /* no passwd entry: keep "unknown" */
  }
  return { name: `cli:${name}`.slice(0, 64), role: 'admin' };
}

/** One operation of the service layer (the API's code path), as the CLI's administrator. */
export async function operate<T>(w: DataOption, name: OperationName, input: Record<string, unknown>, file?: Uint8Array): Promise<T> {
  return withStore(w, async (s) => {
    try {
      return (await runOperation(name, { store: s, actor: cliActor() }, input, file)) as T;
    } catch (e) {
      if (e instanceof ServiceError) throw new CliError(e.message);
      throw e;
    }
  });
}

/** One subcommand on an open store, closed after; store errors are the user's input: `error: …`. */
async function withStore<T>(w: DataOption, fn: (s: CloudStore) => Promise<T>, o: { importJson?: boolean } = {}): Promise<T> {
  const s = await openStore(w, o);
  try {
    return await fn(s);
  } catch (e) {
    if (e instanceof CloudStoreError || ['RegistryError', 'ObjectStoreError', 'TagError', 'PolicyError'].includes((e as Error).name)) throw new CliError((e as Error).message);
    throw e;
  } finally {
    await s.close();
  }
}

function positive(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0)) throw new CliError(`${what} must be a positive number, not "${text}"`);
  return n;
}

export interface ServeOptions {
  data?: string;
  db?: string;
  pushRate?: string;
  noticeTimeout?: string;
  publicUrl?: string;
  workerId?: string;
  quiet?: boolean;
  host?: string;
  port?: string;
  httpPort?: string;
  publicHost?: string;
  broker?: string;
  /** File holding the external broker's password for the cloud (else $OTADIFF_BROKER_PASSWORD). */
  brokerPasswordFile?: string;
  mqttTlsPort?: string;
  signingKey?: string;
  /** Private key (PEM) that signs every package the cloud makes (diffs and raw packages). */
  signKey?: string;
  urlTtl?: string;
  coapPort?: string;
  downloadProtocol?: string;
  tlsKey?: string;
  tlsCert?: string;
  apiPort?: string;
  apiHost?: string;
}

/**
 * The cloud's credential at an external broker: the user from the URL, the password from a file or the
 * environment, never from the URL (a command line shows in the process list).
 */
function brokerCredential(opts: ServeOptions): { url: string; credential: { username: string; password: string } } | undefined {
  if (opts.broker === undefined) {
    if (opts.brokerPasswordFile !== undefined) throw new CliError('--broker-password-file goes with --broker');
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(opts.broker);
  } catch {
    throw new CliError(`--broker ${redactUrl(opts.broker)} is not a URL`);
  }
  if (u.password !== '')
    throw new CliError('--broker must not carry a password (it shows in the process list): put it in --broker-password-file FILE or $OTADIFF_BROKER_PASSWORD');
  let password: string | undefined;
  if (opts.brokerPasswordFile !== undefined) {
    try {
      password = readFileSync(opts.brokerPasswordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new CliError(`cannot read --broker-password-file ${opts.brokerPasswordFile}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  } else password = process.env.OTADIFF_BROKER_PASSWORD || undefined;
  if (password === undefined) return undefined;
  if (u.username === '') throw new CliError('a broker password needs a user name in --broker (mqtt://USER@host:port)');
  const username = decodeURIComponent(u.username);
  u.username = '';
  return { url: u.toString().replace(/\/$/, ''), credential: { username, password } };
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
  const db = opts.db ?? (process.env.OTADIFF_DB || undefined);
  const pushRate = positive(opts.pushRate, 200, '--push-rate');
  const noticeTimeout = positive(opts.noticeTimeout, 300, '--notice-timeout');
  if (opts.publicUrl !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(opts.publicUrl)) throw new CliError('--public-url must be an http:// or https:// URL');
  if (opts.workerId !== undefined && !/^[A-Za-z0-9_.-]{1,40}$/.test(opts.workerId)) throw new CliError('--worker-id must be 1-40 of letters, digits, _ . -');
  if (opts.broker !== undefined && !/^mqtts?:\/\/\S+$/.test(opts.broker)) throw new CliError('--broker must be an mqtt:// or mqtts:// URL');
  const service = brokerCredential(opts);
  const ttl = parseUrlTtl(opts.urlTtl);
  const signingKey = opts.signingKey === undefined ? undefined : loadSigningKey(opts.signingKey);
  const packageKey = opts.signKey === undefined ? undefined : loadPackageKey(opts.signKey);
  if ((opts.tlsKey === undefined) !== (opts.tlsCert === undefined)) throw new CliError('--tls-key and --tls-cert go together');
  const tls = opts.tlsKey === undefined ? undefined : { key: readPem(opts.tlsKey, 'TLS key'), cert: readPem(opts.tlsCert!, 'TLS certificate') };
  const mqttTlsPort = opts.mqttTlsPort === undefined ? undefined : port(opts.mqttTlsPort, 8883, '--mqtt-tls-port');
  if (mqttTlsPort !== undefined && tls === undefined) throw new CliError('--mqtt-tls-port needs --tls-key and --tls-cert');
  if (mqttTlsPort !== undefined && opts.broker !== undefined) throw new CliError('--mqtt-tls-port is for the embedded broker: an external broker (--broker) has its own TLS');
  const stamp = (): string => new Date().toISOString().slice(11, 23);
  const cloud = await startOtaCloud({
    dataDir,
    db,
    pushRate,
    noticeTimeoutMs: noticeTimeout * 1000,
    publicUrl: opts.publicUrl,
    workerId: opts.workerId,
    verbose: opts.quiet !== true,
    host: opts.host ?? '127.0.0.1',
    mqttPort: port(opts.port, 1883, '--port'),
    httpPort: port(opts.httpPort, 8080, '--http-port'),
    coapPort: port(opts.coapPort, 5683, '--coap-port'),
    downloadProtocol: downloadProtocolOf(opts.downloadProtocol),
    tls,
    publicHost: opts.publicHost,
    broker: service === undefined ? opts.broker : service.url,
    ...(service === undefined ? {} : { service: service.credential }),
    mqttTlsPort,
    urlTtlMs: ttl * 1000,
    signingKey,
    packageSigningKey: packageKey,
    apiPort: opts.apiPort === undefined ? undefined : port(opts.apiPort, 0, '--api-port'),
    apiHost: opts.apiHost,
    log: (line) => out(`${stamp()} ${line}`),
  }).catch((e: unknown) => {
    throw new CliError(`cannot start the cloud: ${(e as Error).message}`);
  });
  out(`otadiff cloud worker ${cloud.workerId}, data ${dataDir}, database ${db === undefined ? `SQLite ${resolve(dataDir, 'otadiff.db')}` : `PostgreSQL ${redactUrl(db)}`}`);
  out(`  MQTT   ${redactUrl(cloud.brokerUrl)}${cloud.brokerTlsUrl === undefined ? '' : ` and ${cloud.brokerTlsUrl} (TLS)`}${opts.broker === undefined ? ' (embedded broker, Aliyun device sign-in, timestamps within ±15 min, each sign-in once)' : ' (external broker)'}`);
  out(`  files  ${cloud.files.url} (signed URLs valid ${ttl} s${signingKey ? ', RSA digestsign' : ''}), CoAP ${cloud.coap.url}`);
  out(
    packageKey === undefined
      ? '  packages unsigned (no --sign-key): devices that trust a key (device --pubkey) refuse them'
      : `  packages signed with the ${algorithmOf(packageKey)} key ${opts.signKey} (firmware version and security counter in the signed header)`,
  );
  if (cloud.api !== undefined) out(`  API    ${cloud.api.url}/api/v1 (bearer tokens: serve add-operator), console ${cloud.api.url}/`);
  out(`  pushes at most ${pushRate} notice(s) a second${opts.broker === undefined ? '' : '; shares the work with the other workers on this database and broker'}`);
  const products = await cloud.store.productList();
  const rollouts = await cloud.store.db.selectFrom('rollouts').select('state').execute();
  out(`  ${products.length} product(s), ${await cloud.store.deviceCount()} device(s), ${(await cloud.store.jobs()).length - rollouts.length} job(s), ${rollouts.length} rollout(s) (${rollouts.filter((r) => r.state === 'running').length} running); Ctrl-C stops`);
  try {
    await untilStopped(run.signal);
  } finally {
    await cloud.close();
    out('stopped');
  }
}

export interface DataOption {
  data?: string;
  /** postgres://… (else SQLite in the data directory). */
  db?: string;
}

export async function addProductCommand(opts: DataOption & { productKey: string; productSecret?: string; mode?: string; splitSize?: string; dictSize?: string; json?: boolean }): Promise<void> {
  const mode = (opts.mode ?? 'inplace') as PackageMode;
  if (mode !== 'inplace' && mode !== 'ab' && mode !== 'full') throw new CliError(`--mode must be inplace, ab or full, not "${opts.mode}"`);
  const splitSize = parseSize(opts.splitSize ?? '64K');
  const dictSize = parseSize(opts.dictSize ?? '16K');
  const p = await operate<{ productKey: string; productSecret: string; splitSize: number }>(opts, 'product.add', { productKey: opts.productKey, ...(opts.productSecret === undefined ? {} : { productSecret: opts.productSecret }), mode, splitSize, dictSize });
  if (opts.json) stdout(JSON.stringify({ productKey: p.productKey, productSecret: p.productSecret, config: { productKey: p.productKey, mode, splitSize, dictSize } }));
  else stdout(`product ${p.productKey}: ${mode === 'full' ? 'full images' : `${mode} diffs, split ${formatBytes(p.splitSize)}`}, productSecret ${p.productSecret}`);
}

export async function addDeviceCommand(opts: DataOption & { productKey: string; deviceName: string; deviceSecret?: string; tag?: string[]; json?: boolean }): Promise<void> {
  const d = await operate<{ productKey: string; deviceName: string; deviceSecret: string; tags: string[] }>(opts, 'device.add', {
    productKey: opts.productKey,
    deviceName: opts.deviceName,
    ...(opts.deviceSecret === undefined ? {} : { deviceSecret: opts.deviceSecret }),
    ...(opts.tag === undefined || opts.tag.length === 0 ? {} : { tags: opts.tag }),
  });
  if (opts.json) stdout(JSON.stringify({ productKey: d.productKey, deviceName: d.deviceName, deviceSecret: d.deviceSecret, ...(d.tags.length > 0 ? { tags: d.tags } : {}) }));
  else {
    stdout(`device ${d.productKey}/${d.deviceName}, deviceSecret ${d.deviceSecret}${d.tags.length > 0 ? `, tags ${d.tags.join(', ')}` : ''}`);
    stdout(`run it: otadiff device --product-key ${d.productKey} --device-name ${d.deviceName} --device-secret ${d.deviceSecret} --flash DIR --image FILE --version V`);
  }
}

export async function addFirmwareCommand(
  file: string,
  opts: DataOption & { productKey: string; version: string; securityCounter?: string; allowDowngrade?: boolean; json?: boolean },
): Promise<void> {
  const securityCounter = opts.securityCounter === undefined ? undefined : parseSecurityCounter(opts.securityCounter);
  const image = readInput(file, 'firmware');
  const r = await operate<{ size: number; sha256: string; securityCounter: number; allowDowngrade: boolean; path: string }>(
    opts,
    'firmware.add',
    { productKey: opts.productKey, version: opts.version, ...(securityCounter === undefined ? {} : { securityCounter }), allowDowngrade: opts.allowDowngrade === true },
    image,
  );
  if (opts.json) stdout(JSON.stringify(r));
  else stdout(`${opts.productKey} ${opts.version}: ${formatBytes(r.size)}, SHA-256 ${r.sha256}, security counter ${r.securityCounter}${r.allowDowngrade ? ', allows a downgrade (a rollback target)' : ''}`);
}

export async function jobCommand(opts: DataOption & { productKey: string; version: string; deviceName?: string[]; downloadProtocol?: string; json?: boolean }): Promise<void> {
  const downloadProtocol = downloadProtocolOf(opts.downloadProtocol);
  const j = await operate<{ id: string; productKey: string; version: string; devices: string[] | 'all' }>(opts, 'job.create', {
    productKey: opts.productKey,
    version: opts.version,
    ...(opts.deviceName === undefined || opts.deviceName.length === 0 ? {} : { devices: opts.deviceName }),
    ...(downloadProtocol === undefined ? {} : { downloadProtocol }),
  });
  if (opts.json) stdout(JSON.stringify(j));
  else stdout(`job ${j.id}: ${j.productKey} -> ${j.version} for ${j.devices === 'all' ? 'all devices' : j.devices.join(', ')} (a running server pushes it)`);
}

export async function statusCommand(opts: DataOption & { json?: boolean }): Promise<void> {
  await withStore(opts, async (s) => {
    const products = await s.productList();
    const firmware = Object.fromEntries(await Promise.all(products.map(async (p) => [p.productKey, await s.firmwareReleases(p.productKey)] as const)));
    const jobs = await s.jobs();
    const st = await s.status();
    if (opts.json) {
      stdout(JSON.stringify({ products, firmware, jobs, devices: st.devices }));
      return;
    }
    for (const p of products) {
      const fw = firmware[p.productKey].map((r) => `${r.version} (counter ${r.securityCounter}${r.allowDowngrade ? ', downgrade allowed' : ''})`);
      stdout(`product ${p.productKey} (${p.mode}): firmware ${fw.join(', ') || '-'}`);
    }
    for (const j of jobs) {
      const counts = Object.entries(await s.jobCounts(j.id)).map(([k, n]) => `${n} ${k}`);
      stdout(`job ${j.id}: ${j.productKey} -> ${j.version} for ${j.devices === 'all' ? 'all' : j.devices.join(', ')}: ${counts.join(', ') || 'no devices'}`);
    }
    for (const x of st.devices) {
      const job = x.job ? `, job ${x.job.version}: ${x.job.state}${x.job.step !== undefined ? ` (${x.job.step}${x.job.desc ? ` ${x.job.desc}` : ''})` : ''}` : '';
      stdout(`device ${x.productKey}/${x.deviceName}: ${x.version ?? 'never seen'}${job}`);
    }
  });
}

export async function migrateFromCommand(dir: string, opts: DataOption & { json?: boolean }): Promise<void> {
  const from = resolve(dir);
  if (!existsSync(from)) throw new CliError(`${from} does not exist`);
  const r = await withStore(opts, (s) => importJsonDir(s, from), { importJson: false });
  if (opts.json) stdout(JSON.stringify({ from, ...r }));
  else stdout(`imported ${from}: ${r.products} product(s), ${r.devices} device(s), ${r.firmware} firmware version(s), ${r.jobs} job(s)`);
}
