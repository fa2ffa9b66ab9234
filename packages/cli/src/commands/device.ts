// `otadiff device`: a device on this host (AliOS' otaapp on linuxhost). Its flash
// partitions live in files under --flash DIR; it signs in to the broker, reports its
// version, waits for upgrade notices, downloads, reboots into the restore, confirms.
// With --pubkey the service and the bootloader trust only packages those keys signed.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  createDeviceFlashDir,
  createFlashDirPort,
  createOtaService,
  isValidVersion,
  loadDeviceConfig,
  OtaServiceError,
  resolveTrustedKeys,
  TrustedKeyError,
  type DeviceConfig,
  type MqttSignMethod,
  type OtaServiceEvent,
} from '@otadiff/ota-core';
import { readInput } from '../files.js';
import { CliError, formatBytes, parseSize } from '../size-arg.js';
import { stdout, untilStopped, type Out } from './run-until.js';

export interface DeviceOptions {
  productKey?: string;
  productSecret?: string;
  deviceName?: string;
  deviceSecret?: string;
  config?: string;
  flash?: string;
  broker?: string;
  version?: string;
  image?: string;
  ab?: boolean;
  slotSize?: string;
  splitSize?: string;
  publicKey?: string;
  /** Public keys (PEM files) that sign packages; repeatable, a file may hold several. */
  pubkey?: string[];
  ca?: string;
  protocol?: string;
  transport?: string;
  signMethod?: string;
  once?: boolean;
  json?: boolean;
}

function describe(e: OtaServiceEvent): string | undefined {
  switch (e.type) {
    case 'boot':
      if (e.outcome.kind === 'normal') return `boot: slot ${e.outcome.slot}`;
      if (e.outcome.kind === 'trial') return `boot: new image in slot ${e.outcome.slot}, trial boot ${e.outcome.attempt}`;
      return `boot: ${e.outcome.kind} (${e.outcome.reason}): ${e.outcome.detail}`;
    case 'confirmed':
      return `confirmed slot ${e.slot} (${e.version})`;
    case 'update-failed':
      return `update to ${e.version} failed in the bootloader (${e.reason}): ${e.detail}`;
    case 'connected':
      return `connected to ${e.broker}`;
    case 'disconnected':
      return 'disconnected from the broker; reconnecting';
    case 'inform':
      return `running ${e.version}, reported to the cloud`;
    case 'notice':
      return `upgrade notice: ${e.info.version}, ${e.info.isDiff ? 'diff' : 'full image'}, ${formatBytes(e.info.size)}`;
    case 'invalid-notice':
      return `ignored a malformed notice: ${e.error.message}`;
    case 'ignored':
      return `ignored notice for ${e.info.version}: ${e.reason}`;
    case 'header': {
      const what = e.header.mode === 'raw' ? 'full image (raw)' : `${e.header.mode} diff for our image`;
      const release = `${e.header.firmwareVersion ? `version ${e.header.firmwareVersion}, ` : ''}security counter ${e.header.securityCounter}${e.header.allowDowngrade ? ' (allows a downgrade)' : ''}`;
      const sig = e.signature === null ? 'signature not checked (no --pubkey)' : `${e.signature} signature OK`;
      return `package header OK: ${what}, new image ${formatBytes(e.header.newSize)}, ${release}; ${sig}`;
    }
    case 'download-start':
      return `downloading from byte ${e.offset} of ${e.total}${e.resumed ? ' (resumed from checkpoint)' : ''}`;
    case 'downloaded':
      return `downloaded ${formatBytes(e.result.size)} in ${e.result.attempts} connection(s)`;
    case 'verified':
      return `verified in flash (SHA-256 ${e.sha256.slice(0, 16)}…${e.digestsign ? ', RSA digestsign' : ''}${e.signature === null ? '' : `, ${e.signature} signature and payload SHA-256`})`;
    case 'set-boot':
      return `set_boot: ${e.firmwareType} -> slot ${e.slot}`;
    case 'rebooting':
      return 'rebooting into the bootloader';
    case 'failed':
      return `update failed (${e.step}): ${e.error.message}`;
    case 'error':
      return `error: ${e.error.message}`;
    case 'powercut':
      return `power cut: ${e.error.message}`;
    default:
      return undefined;
  }
}

function loadPublicKey(path: string): KeyObject {
  try {
    return createPublicKey(readFileSync(path));
  } catch (e) {
    throw new CliError(`cannot use ${path} as a public key: ${(e as Error).message}`);
  }
}

export async function deviceCommand(opts: DeviceOptions, run: { signal?: AbortSignal; out?: Out } = {}): Promise<void> {
  const out = run.out ?? stdout;
  let cfg: DeviceConfig | undefined;
  if (opts.config !== undefined || opts.productKey === undefined || opts.deviceName === undefined || opts.deviceSecret === undefined) {
    try {
      cfg = loadDeviceConfig(opts.config);
    } catch (e) {
      throw new CliError(`give --product-key, --device-name and --device-secret, or a device config: ${(e as Error).message}`);
    }
  }
  const productKey = opts.productKey ?? cfg!.productKey;
  const deviceName = opts.deviceName ?? cfg!.deviceName;
  const deviceSecret = opts.deviceSecret ?? cfg!.deviceSecret;
  const flash = opts.flash ?? cfg?.flash;
  if (flash === undefined) throw new CliError('--flash DIR is required (the device flash directory)');
  const dir = resolve(flash);
  if (opts.version !== undefined && !isValidVersion(opts.version)) throw new CliError(`invalid --version "${opts.version}"`);
  const protocol = opts.protocol ?? 'http';
  if (protocol !== 'http' && protocol !== 'https' && protocol !== 'coap') throw new CliError('--protocol must be http, https or coap');
  const signMethod = (opts.signMethod ?? 'hmacsha256') as MqttSignMethod;
  if (!['hmacsha256', 'hmacsha1', 'hmacmd5'].includes(signMethod)) throw new CliError('--sign-method must be hmacsha256, hmacsha1 or hmacmd5');
  const publicKey = opts.publicKey === undefined ? undefined : loadPublicKey(opts.publicKey);
  // Package signing keys: --pubkey, else the device config's trustedKeys.
  const keyInputs = opts.pubkey !== undefined && opts.pubkey.length > 0 ? opts.pubkey : cfg?.trustedKeys;
  let trustedKeys;
  try {
    trustedKeys = keyInputs === undefined ? undefined : resolveTrustedKeys(keyInputs);
  } catch (e) {
    if (e instanceof TrustedKeyError) throw new CliError(e.message);
    throw e;
  }
  const ca = opts.ca === undefined ? undefined : Buffer.from(readInput(opts.ca, 'CA certificate'));
  const log = (line: string): void => (opts.json ? undefined : out(`${new Date().toISOString().slice(11, 23)} ${line}`));

  if (!existsSync(join(dir, 'layout.json'))) {
    if (opts.image === undefined || opts.version === undefined) throw new CliError(`${dir} holds no device flash; give --image FILE and --version V to create it`);
    const image = readInput(opts.image, 'image');
    try {
      const layout = createDeviceFlashDir(dir, {
        image,
        version: opts.version,
        ab: opts.ab === true,
        slotSize: opts.slotSize === undefined ? undefined : parseSize(opts.slotSize),
        splitSize: opts.splitSize === undefined ? undefined : parseSize(opts.splitSize),
      });
      log(`created ${dir}: ${layout.appB ? 'A/B slots' : 'one slot (in-place restore)'} of ${formatBytes(layout.appA.size)}, OTA ${formatBytes(layout.ota.size)}; slot A = ${opts.version}`);
    } catch (e) {
      throw new CliError(`cannot create the device flash: ${(e as Error).message}`);
    }
  } else if (opts.image !== undefined) {
    log(`${dir} already holds a device flash: --image ignored`);
  }

  if (trustedKeys !== undefined) {
    log(`trusting ${trustedKeys.length} package signing key(s) (${[...new Set(trustedKeys.map((k) => k.algorithm))].join(', ')}): the service and the bootloader refuse unsigned or wrongly signed packages`);
  } else {
    log('no --pubkey: package signatures are not checked (the security counter still is)');
  }
  let port;
  try {
    // The bootloader trusts the same keys as the service.
    port = createFlashDirPort(dir, { trustedKeys });
  } catch (e) {
    throw new CliError(`cannot open the device flash ${dir}: ${(e as Error).message}`);
  }
  let settle: ((r: Error | null) => void) | undefined;
  const finished = new Promise<Error | null>((r) => (settle = r));
  let setBootSeen = false;
  let lastPct = -10;
  const svc = createOtaService({
    productKey,
    deviceName,
    deviceSecret,
    productSecret: opts.productSecret ?? cfg?.productSecret,
    broker: opts.broker ?? cfg?.broker,
    transport: opts.transport === 'coap' ? 'coap' : 'mqtt',
    port,
    initialVersion: opts.version,
    downloadProtocol: protocol,
    signMethod,
    publicKey,
    trustedKeys,
    download: ca === undefined ? undefined : { ca },
    onEvent: (e) => {
      if (opts.json) {
        const { type, ...rest } = e;
        out(JSON.stringify({ type, ...rest }, (_k, v: unknown) => (v instanceof Error ? v.message : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));
      } else if (e.type === 'download') {
        const pct = Math.floor((e.offset * 100) / e.total);
        if (pct >= lastPct + 10) log(`download ${pct}% (${e.offset}/${e.total})`);
        lastPct = pct >= lastPct + 10 ? pct : lastPct;
      } else {
        const line = describe(e);
        if (line !== undefined) log(line);
      }
      if (e.type === 'download-start') lastPct = -10;
      if (!opts.once) return;
      if (e.type === 'set-boot') setBootSeen = true;
      if (e.type === 'inform' && setBootSeen) settle?.(null);
      if (e.type === 'failed' || e.type === 'error') settle?.(e.error);
      if (e.type === 'update-failed') settle?.(new Error(`update to ${e.version} failed: ${e.detail}`));
    },
  });
  try {
    await svc.start();
  } catch (e) {
    await svc.close();
    await port.close();
    throw new CliError(e instanceof OtaServiceError ? e.message : `device start failed: ${(e as Error).message}`);
  }
  let failure: Error | null = null;
  try {
    await untilStopped(
      run.signal,
      finished.then((r) => {
        failure = r;
      }),
    );
  } finally {
    await svc.close();
    await port.close();
  }
  if (failure !== null) throw new CliError((failure as Error).message);
}
