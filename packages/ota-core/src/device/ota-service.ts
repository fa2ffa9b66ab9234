// The device side of the OTA service (the counterpart of AliOS Things' ota_service_init):
// power on through the bootloader, confirm a new image, report the version, and for
// each upgrade notice: refuse what is not newer, fetch the package's signed header and
// signature block first and refuse, before anything is downloaded or erased, a package
// that is unsigned or wrongly signed (with trustedKeys), below the device's recorded
// security counter (anti-rollback), not what the notice announces (version, size, diff
// or raw), or a diff made for another image; download straight into the flash port with
// a persisted checkpoint; verify the package as it sits in flash (notice digest + RSA
// digestsign, then the signed header and the payload SHA-256 again on the flash bytes);
// set_boot, and reboot into the restore. AliOS compares the notice's version strings and
// trusts the notice; here the signed header is authoritative.
//
// Power cuts: any PowerCutError from the port (a FaultyFlash in tests and the demo)
// stops the service on the spot, like a CPU losing power: nothing more is written or
// sent. The owner powers the device back on with start(); the bootloader resumes a
// restore, and the cloud's next notice resumes a download from its checkpoint.

import { createHash, type KeyLike } from 'node:crypto';
import {
  checkSecurityCounter,
  checkTrust,
  FIXED_HEADER_BYTES,
  packageLength,
  PowerCutError,
  backupBytes,
  parseFixedHeader,
  parseHeader,
  PackageError,
  recordsOffset,
  signatureAlgorithmOf,
  type BootOutcome,
  type PackageHeader,
  type SignatureAlgorithm,
  type Slot,
  type TrustedKey,
} from '@otadiff/patch-apply';
import type { DownloadCheckpoint } from './checkpoint.js';
import { coapDownload } from './coap-download.js';
import { loadDeviceConfig, type DeviceConfig } from './device-config.js';
import { emptyDeviceState, parseDeviceState, serializeDeviceState, type DeviceState } from './device-state.js';
import { download, DownloadError, type DownloadResult } from './downloader.js';
import { EventHub } from '../protocol/event-hub.js';
import { createFlashDirPort, type OtaPort } from './flash-port.js';
import { createHasher, resumeHasher } from './hashing.js';
import { OtaStep, type OtaStepError, type UpgradeInfo } from '../protocol/messages.js';
import type { MqttSignMethod } from '../protocol/mqtt-auth.js';
import { connectOtaDeviceCoap, OtaCoapError } from './coap-link.js';
import { connectOtaDevice } from './mqtt-link.js';
import { fetchPackageHead, HEAD_FETCH_BYTES } from './package-head.js';
import type { BackoffOptions, SleepFn } from '../protocol/retry.js';
import { hashAlgorithmOf, SignatureError, verifyPackage } from '../protocol/signature.js';
import { resolveTrustedKeys, TrustedKeyError, type TrustedKeyInput } from './trusted-keys.js';
import { compareVersions, isValidVersion } from '../protocol/version.js';

export type DownloadProtocol = 'http' | 'https' | 'coap';

export interface OtaServiceOptions {
  /** The device quadruple; whatever is missing comes from the config file. */
  productKey?: string;
  productSecret?: string;
  deviceName?: string;
  deviceSecret?: string;
  /** Identity file (default $OTADIFF_DEVICE_CONFIG or ~/.otadiff/device.json). */
  configPath?: string;
  /** MQTT broker URL (default: the config's, else mqtt://127.0.0.1:1883); with transport 'coap', the cloud's coap://host:port. */
  broker?: string;
  /** Notice channel (AliOS' trans_protcol): MQTT topics (default) or the same messages over CoAP. */
  transport?: 'mqtt' | 'coap';
  /** CoAP transport: ask the cloud for an upgrade notice this often (ms; default 5000). */
  noticePollMs?: number;
  /** Accepted download URLs: 'http' (http: and https:), 'https' (https: only) or 'coap'. */
  downloadProtocol?: DownloadProtocol;
  /** MQTT sign-in HMAC (default hmacsha256). */
  signMethod?: MqttSignMethod;
  /** The board (default: a flash-directory port on the config's `flash`). */
  port?: OtaPort;
  /** Version of the factory image, when the port's state has none yet. */
  initialVersion?: string;
  module?: string;
  /**
   * Public keys that sign packages (parsed keys, PEM text, PEM file paths or SPKI DER; default: the
   * config's `trustedKeys`). When given, a package must be signed by one of them: an unsigned or
   * wrongly signed one is refused before anything is downloaded or erased, and again on the flash
   * bytes before set_boot. Give the bootloader the same keys (createFlashDirPort's `trustedKeys`).
   */
  trustedKeys?: readonly TrustedKeyInput[];
  /** RSA public key: notices must then carry a digestsign that verifies (AliOS' digestsign). */
  publicKey?: KeyLike;
  requireDigestSign?: boolean;
  /** Hand-over rollback flag (default true): an unconfirmed A/B image returns to the old one. */
  rollback?: boolean;
  /** Decides whether a newly booted image is good; false reboots without confirming it. */
  healthCheck?: (running: { slot: Slot; version: string; attempt: number }) => boolean | Promise<boolean>;
  /** Give up after this many unhealthy boots in a row (default 8). */
  maxUnhealthyBoots?: number;
  /** Reconnect to the broker when the connection drops (default true). */
  reconnect?: boolean;
  /** Report download progress every this many percent (default 10). */
  progressStep?: number;
  download?: {
    retries?: number;
    backoff?: BackoffOptions;
    sleep?: SleepFn;
    timeoutMs?: number;
    ca?: string | Buffer | Array<string | Buffer>;
    coapBlockSize?: number;
    ackTimeoutMs?: number;
  };
  onEvent?: (e: OtaServiceEvent) => void;
}

export type OtaServiceEvent =
  | { type: 'boot'; outcome: BootOutcome }
  | { type: 'unhealthy'; slot: Slot; version: string; attempt: number }
  | { type: 'confirmed'; slot: Slot; version: string }
  | { type: 'update-failed'; version: string; reason: string; detail: string }
  | { type: 'connected'; broker: string }
  | { type: 'disconnected' }
  | { type: 'inform'; version: string }
  | { type: 'progress'; step: number; desc: string }
  | { type: 'notice'; info: UpgradeInfo }
  | { type: 'invalid-notice'; error: Error }
  | { type: 'ignored'; info: UpgradeInfo; reason: string }
  /**
   * The signed head passed every check before the download: `signature` is the algorithm that verified
   * (null when the service trusts no key, so nothing was judged), `fetched` the bytes fetched for it.
   */
  | { type: 'header'; header: PackageHeader; fetched: number; rangeHonoured: boolean; signature: SignatureAlgorithm | null }
  | { type: 'download-start'; offset: number; total: number; resumed: boolean }
  | { type: 'download'; offset: number; total: number }
  | { type: 'downloaded'; result: DownloadResult }
  /** The package in flash: notice digest, digestsign, and (`signature`) the signed header and payload SHA-256. */
  | { type: 'verified'; sha256: string; digestsign: boolean; signature: SignatureAlgorithm | null; securityCounter: number }
  | { type: 'set-boot'; firmwareType: 'raw' | 'diff'; slot: Slot; version: string }
  | { type: 'failed'; step: number; error: Error }
  | { type: 'rebooting' }
  | { type: 'powercut'; error: Error }
  | { type: 'error'; error: Error }
  | { type: 'stopped' };

export type OtaServiceErrorCode = 'CONFIG' | 'AUTH' | 'CONNECT' | 'HALT' | 'UNHEALTHY' | 'STATE';

export class OtaServiceError extends Error {
  override name = 'OtaServiceError';
  constructor(
    readonly code: OtaServiceErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A notice the device will not act on; reported with `step`. */
class Refusal extends Error {
  override name = 'Refusal';
  constructor(
    readonly step: OtaStepError,
    message: string,
    /** The downloaded bytes can never pass: forget the download, start over next time. */
    readonly restart = false,
  ) {
    super(message);
  }
}

/** What a package's signed head is checked against. */
interface HeadCheck {
  info: UpgradeInfo;
  running: Slot;
  runningVersion: string;
  /** The notice's version is not newer than the running one: only a signed allow-downgrade package goes. */
  downgrade: boolean;
  /** The device's recorded security counter. */
  recorded: number;
}

/**
 * Bytes of the signed head (header + signature block) that a fixed header announces; refuses a header
 * that does not parse or declares another package length than the notice.
 */
/** A signed head that passed checkHead: its header, the algorithm that verified it, the slot its image goes to. */
interface CheckedHead {
  header: PackageHeader;
  signature: SignatureAlgorithm | null;
  target: Slot;
}

function headLength(fixedBytes: Uint8Array, info: UpgradeInfo): number {
  let f;
  try {
    f = parseFixedHeader(fixedBytes);
  } catch (e) {
    if (e instanceof PackageError) throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: not a usable otadiff package: ${e.message}`);
    throw e;
  }
  const declared = packageLength(f);
  if (declared !== info.size) throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: the package header declares ${declared} bytes, the notice ${info.size}`);
  return recordsOffset(f);
}

/** "2.0" and "2.0.0" name the same release; anything else must be spelt the same. */
function sameVersion(a: string, b: string): boolean {
  return a === b || (isValidVersion(a) && isValidVersion(b) && compareVersions(a, b) === 0);
}

export type OtaServiceStatus = 'off' | 'booting' | 'running';

export interface OtaService {
  readonly productKey: string;
  readonly deviceName: string;
  readonly broker: string;
  readonly port: OtaPort;
  readonly status: OtaServiceStatus;
  /** The booted slot and its version, while running. */
  readonly running: { slot: Slot; version: string } | undefined;
  /** True while a notice is being handled. */
  readonly updating: boolean;
  /** Power on: the bootloader, confirmation, connect, inform. Resolves when running, or off after a power cut. */
  start(): Promise<void>;
  /** Power off cleanly (aborts a download; its checkpoint stays). */
  stop(): Promise<void>;
  /** stop(), and close the port when the service opened it. */
  close(): Promise<void>;
  on(listener: (e: OtaServiceEvent) => void): () => void;
  waitFor(pred: (e: OtaServiceEvent) => boolean, timeoutMs?: number): Promise<OtaServiceEvent>;
}

const other = (s: Slot): Slot => (s === 'A' ? 'B' : 'A');
const HASH_BLOCK = 64 * 1024;

function isPowerCut(e: unknown): boolean {
  let x: unknown = e;
  for (let i = 0; x !== undefined && x !== null && i < 8; i++) {
    if (x instanceof PowerCutError) return true;
    x = (x as { cause?: unknown }).cause;
  }
  return false;
}

function stepFor(e: unknown): OtaStepError {
  if (e instanceof Refusal) return e.step;
  if (e instanceof SignatureError) return OtaStep.VERIFY_FAILED;
  if (e instanceof DownloadError) {
    if (e.code === 'DIGEST_MISMATCH' || e.code === 'SIZE_MISMATCH') return OtaStep.VERIFY_FAILED;
    if (e.code === 'SINK_FAILED') return OtaStep.BURN_FAILED;
    return OtaStep.DOWNLOAD_FAILED;
  }
  const name = (e as Error)?.name;
  if (name === 'FlashPortError' || name === 'FlashError' || name === 'HandoverError' || name === 'LayoutError') return OtaStep.BURN_FAILED;
  return OtaStep.UPGRADE_FAILED;
}

/** The download can never succeed as recorded: start it over next time. */
function restartsDownload(e: unknown): boolean {
  return (e instanceof Refusal && e.restart) || e instanceof SignatureError || (e instanceof DownloadError && (e.code === 'DIGEST_MISMATCH' || e.code === 'SIZE_MISMATCH'));
}

/** A stored checkpoint whose hash state loads (a resume from it can work). */
async function resumable(cp: DownloadCheckpoint): Promise<boolean> {
  try {
    await resumeHasher(cp.algorithm, cp.hashState);
    return true;
  } catch {
    return false;
  }
}

function allowedProtocols(p: DownloadProtocol): string[] {
  if (p === 'https') return ['https:'];
  if (p === 'coap') return ['coap:'];
  return ['http:', 'https:'];
}

/** The notice channel to the cloud, whichever transport carries it. */
interface DeviceLink {
  reportVersion(version: string, module?: string): Promise<void>;
  reportProgress(step: number, desc?: string, module?: string): Promise<void>;
  onUpgrade(handler: (info: UpgradeInfo) => void): void;
  close(): Promise<void>;
  /** Drop the link at once (a power cut). */
  kill(): Promise<void>;
}

function connectError(e: unknown, broker: string): OtaServiceError {
  if (e instanceof OtaCoapError && e.code === 'AUTH') return new OtaServiceError('AUTH', e.message, { cause: e });
  const code = (e as { code?: unknown })?.code;
  const msg = (e as Error)?.message ?? String(e);
  if (code === 4 || code === 5 || code === 134 || code === 135 || /bad username or password|not authori[sz]ed/i.test(msg)) {
    return new OtaServiceError('AUTH', `the broker refused the device's sign-in: ${msg}`, { cause: e });
  }
  return new OtaServiceError('CONNECT', `cannot connect to ${broker}: ${msg}`, { cause: e });
}

class Service implements OtaService {
  readonly productKey: string;
  readonly deviceName: string;
  readonly broker: string;
  readonly port: OtaPort;
  status: OtaServiceStatus = 'off';
  running: { slot: Slot; version: string } | undefined;
  updating = false;

  private readonly deviceSecret: string;
  private readonly hub = new EventHub<OtaServiceEvent>();
  private readonly ownsPort: boolean;
  private readonly protocol: DownloadProtocol;
  /** Keys a package must be signed by; undefined: signatures are not judged. */
  private readonly trust: readonly TrustedKey[] | undefined;
  private client: DeviceLink | undefined;
  private readonly transport: 'mqtt' | 'coap';
  /** Bumped at every power transition; async work from an older epoch stops quietly. */
  private epoch = 0;
  private work: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: OtaServiceOptions) {
    this.transport = opts.transport ?? 'mqtt';
    if (this.transport !== 'mqtt' && this.transport !== 'coap') throw new OtaServiceError('CONFIG', `unknown transport ${String(opts.transport)} (mqtt or coap)`);
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
    const pk = opts.productKey ?? cfg?.productKey;
    const dn = opts.deviceName ?? cfg?.deviceName;
    const secret = opts.deviceSecret ?? cfg?.deviceSecret;
    if (pk === undefined || dn === undefined || secret === undefined) throw new OtaServiceError('CONFIG', 'productKey, deviceName and deviceSecret are required');
    this.productKey = pk;
    this.deviceName = dn;
    this.deviceSecret = secret;
    this.broker = opts.broker ?? cfg?.broker ?? (this.transport === 'coap' ? 'coap://127.0.0.1:5683' : 'mqtt://127.0.0.1:1883');
    const scheme = /^([a-z]+):/.exec(this.broker)?.[1];
    if (this.transport === 'coap' ? scheme !== 'coap' : scheme === 'coap') {
      throw new OtaServiceError('CONFIG', `transport ${this.transport} cannot use ${this.broker}`);
    }
    const keys = opts.trustedKeys ?? cfg?.trustedKeys;
    if (keys !== undefined) {
      if (keys.length === 0) throw new OtaServiceError('CONFIG', 'trustedKeys is empty: give at least one public key, or leave it out');
      try {
        this.trust = resolveTrustedKeys(keys);
      } catch (e) {
        if (e instanceof TrustedKeyError) throw new OtaServiceError('CONFIG', e.message, { cause: e });
        throw e;
      }
    }
    this.protocol = opts.downloadProtocol ?? 'http';
    if (!['http', 'https', 'coap'].includes(this.protocol)) throw new OtaServiceError('CONFIG', `unknown download protocol ${this.protocol}`);
    if (opts.port !== undefined) {
      this.port = opts.port;
      this.ownsPort = false;
    } else {
      if (cfg?.flash === undefined) throw new OtaServiceError('CONFIG', 'no port given and the device config names no flash directory');
      // The bootloader trusts the same keys as the service.
      this.port = createFlashDirPort(cfg.flash, { trustedKeys: this.trust });
      this.ownsPort = true;
    }
    if (opts.onEvent) this.hub.on(opts.onEvent);
  }

  on(listener: (e: OtaServiceEvent) => void): () => void {
    return this.hub.on(listener);
  }

  waitFor(pred: (e: OtaServiceEvent) => boolean, timeoutMs?: number): Promise<OtaServiceEvent> {
    return this.hub.waitFor(pred, timeoutMs, 'service event');
  }

  private emit(e: OtaServiceEvent): void {
    this.hub.emit(e);
  }

  // ------------------------------------------------------------------ power

  async start(): Promise<void> {
    if (this.status !== 'off') throw new OtaServiceError('STATE', `the service is ${this.status}`);
    this.status = 'booting';
    const epoch = ++this.epoch;
    try {
      await this.powerOn(epoch);
    } catch (e) {
      if (isPowerCut(e)) return this.die(e as Error);
      this.status = 'off';
      this.running = undefined;
      await this.disconnect();
      throw e;
    }
  }

  async stop(): Promise<void> {
    ++this.epoch;
    this.abort?.abort(new Error('service stopped'));
    clearTimeout(this.reconnectTimer);
    await this.work?.catch(() => {});
    await this.disconnect();
    this.status = 'off';
    this.running = undefined;
    this.emit({ type: 'stopped' });
  }

  async close(): Promise<void> {
    await this.stop();
    if (this.ownsPort) await this.port.close();
  }

  /** The power went: stop everything on the spot, write nothing more. */
  private async die(error: Error): Promise<void> {
    ++this.epoch;
    this.status = 'off';
    this.running = undefined;
    this.abort?.abort(error);
    clearTimeout(this.reconnectTimer);
    const c = this.client;
    this.client = undefined;
    if (c) await c.kill().catch(() => {});
    this.emit({ type: 'powercut', error });
  }

  private async disconnect(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.close().catch(() => c.kill().catch(() => {}));
  }

  private async loadState(): Promise<DeviceState> {
    const text = await this.port.loadState();
    if (text === null) return emptyDeviceState();
    try {
      return parseDeviceState(text);
    } catch (e) {
      throw new OtaServiceError('STATE', `the device state is unreadable: ${(e as Error).message}`, { cause: e });
    }
  }

  private async saveState(s: DeviceState): Promise<void> {
    await this.port.saveState(serializeDeviceState(s));
  }

  /** Boot (possibly through a restore), adopt and confirm a new image, then go online. */
  private async powerOn(epoch: number): Promise<void> {
    const reports: Array<[number, string]> = [];
    let unhealthy = 0;
    let version: string;
    for (;;) {
      const outcome = await this.port.powerOn();
      this.emit({ type: 'boot', outcome });
      if (outcome.kind === 'halt') throw new OtaServiceError('HALT', `the bootloader halted (${outcome.reason}): ${outcome.detail}`);
      const state = await this.loadState();
      const p = state.pending;
      let adopted = false;
      if (p !== undefined) {
        if (outcome.kind === 'trial' && p.slot === outcome.slot) {
          // The bootloader verified the new image: this slot now holds the new version. The
          // update stays pending until confirmed, so a rollback can still be reported.
          state.slots[p.slot] = { version: p.version, size: p.size };
          adopted = true;
        } else if (outcome.kind === 'old') {
          const rolledBack = outcome.reason === 'rolledBack';
          const desc = rolledBack ? `rolled back: ${outcome.detail}` : `the bootloader refused the update (${outcome.reason}): ${outcome.detail}`;
          reports.push([rolledBack ? OtaStep.UPGRADE_FAILED : OtaStep.BURN_FAILED, `${p.version}: ${desc}`.slice(0, 1000)]);
          this.emit({ type: 'update-failed', version: p.version, reason: outcome.reason, detail: outcome.detail });
        }
        if (!adopted) delete state.pending;
        await this.saveState(state);
      }
      let rec = state.slots[outcome.slot];
      if (rec === undefined) {
        if (this.opts.initialVersion === undefined) throw new OtaServiceError('STATE', `no version is recorded for slot ${outcome.slot}; give initialVersion`);
        rec = state.slots[outcome.slot] = { version: this.opts.initialVersion, size: 0 };
        await this.saveState(state);
      }
      version = rec.version;
      this.running = { slot: outcome.slot, version };
      if (outcome.kind === 'trial' && this.opts.healthCheck !== undefined) {
        const healthy = await this.opts.healthCheck({ slot: outcome.slot, version, attempt: outcome.attempt });
        if (!healthy) {
          this.emit({ type: 'unhealthy', slot: outcome.slot, version, attempt: outcome.attempt });
          if (++unhealthy >= (this.opts.maxUnhealthyBoots ?? 8)) throw new OtaServiceError('UNHEALTHY', `slot ${outcome.slot} (${version}) failed its health check ${unhealthy} times`);
          continue; // crash-reboot without confirming: the bootloader counts the attempt
        }
      }
      // AliOS' "rollback" callback: confirm the running image.
      await this.port.rollback();
      if (adopted) {
        delete state.pending;
        await this.saveState(state);
      }
      if (outcome.kind === 'trial') this.emit({ type: 'confirmed', slot: outcome.slot, version });
      break;
    }
    if (epoch !== this.epoch) return;
    await this.connect(epoch);
    if (epoch !== this.epoch) return;
    // Failures first, so the cloud closes the job before it sees the old version again.
    for (const [step, desc] of reports) await this.report(step, desc);
    await this.inform();
    this.status = 'running';
  }

  // ------------------------------------------------------------------ notice link

  private async connect(epoch: number): Promise<void> {
    const identity = { productKey: this.productKey, deviceName: this.deviceName, deviceSecret: this.deviceSecret };
    const upgradeParse = { allowedProtocols: allowedProtocols(this.protocol), device: { productKey: this.productKey, deviceName: this.deviceName } };
    const onInvalid = (_where: string, error: Error): void => this.emit({ type: 'invalid-notice', error });
    let link: DeviceLink;
    let onDrop: ((fn: () => void) => void) | undefined;
    try {
      if (this.transport === 'coap') {
        const c = await connectOtaDeviceCoap(this.broker, identity, {
          signMethod: this.opts.signMethod,
          upgradeParse,
          onInvalid,
          pollMs: this.opts.noticePollMs,
          ackTimeoutMs: this.opts.download?.ackTimeoutMs,
        });
        link = { ...c, kill: () => c.close() };
      } else {
        const c = await connectOtaDevice(this.broker, identity, { signMethod: this.opts.signMethod, upgradeParse, onInvalid });
        link = { ...c, kill: () => c.mqtt.endAsync(true) };
        c.mqtt.on('error', () => {}); // surfaced through 'close'
        onDrop = (fn) => void c.mqtt.on('close', fn);
      }
    } catch (e) {
      throw connectError(e, this.broker);
    }
    if (epoch !== this.epoch) {
      await link.close().catch(() => {});
      return;
    }
    this.client = link;
    link.onUpgrade((info) => this.onNotice(info, epoch));
    // CoAP has no connection to lose: the link keeps polling until closed.
    onDrop?.(() => {
      if (this.client !== link || epoch !== this.epoch) return;
      this.client = undefined;
      this.emit({ type: 'disconnected' });
      if (this.opts.reconnect !== false) this.scheduleReconnect(epoch, 1);
    });
    this.emit({ type: 'connected', broker: this.broker });
  }

  private scheduleReconnect(epoch: number, attempt: number): void {
    const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt - 1, 6));
    this.reconnectTimer = setTimeout(() => {
      if (epoch !== this.epoch) return;
      this.connect(epoch)
        .then(() => (epoch === this.epoch ? this.inform() : undefined))
        .catch(() => {
          if (epoch === this.epoch) this.scheduleReconnect(epoch, attempt + 1);
        });
    }, delay);
  }

  private async inform(): Promise<void> {
    const running = this.running;
    if (running === undefined || this.client === undefined) return;
    await this.client.reportVersion(running.version, this.opts.module);
    this.emit({ type: 'inform', version: running.version });
  }

  /** Progress report; a broker hiccup must not fail the update. */
  private async report(step: number, desc: string): Promise<void> {
    this.emit({ type: 'progress', step, desc });
    try {
      await this.client?.reportProgress(step, desc.slice(0, 1000), this.opts.module);
    } catch {
      /* offline: the cloud learns the outcome from the next inform */
    }
  }

  // ------------------------------------------------------------------ upgrade

  private onNotice(info: UpgradeInfo, epoch: number): void {
    if (epoch !== this.epoch) return;
    this.emit({ type: 'notice', info });
    if (this.updating) {
      this.emit({ type: 'ignored', info, reason: 'an update is already in progress' });
      return;
    }
    this.updating = true;
    const run = async (): Promise<void> => {
      let reboot = false;
      try {
        reboot = await this.upgrade(info, epoch);
      } finally {
        this.updating = false;
      }
      if (reboot) await this.reboot(epoch);
    };
    this.work = run().catch((e: unknown) => {
      if (isPowerCut(e)) return this.die(e as Error);
      if (epoch === this.epoch) this.emit({ type: 'error', error: e as Error });
    });
  }

  /** Handles one notice; true when set_boot is done and the device must reboot. */
  private async upgrade(info: UpgradeInfo, epoch: number): Promise<boolean> {
    const port = this.port;
    const running = this.running;
    if (running === undefined) return false;
    const abort = (this.abort = new AbortController());
    const signal = abort.signal;
    const hash = hashAlgorithmOf(info.signMethod);
    const dl = this.opts.download ?? {};
    let state: DeviceState | undefined;
    try {
      // A notice that names a module (Aliyun's default one is "default") must name ours.
      const module = this.opts.module ?? 'default';
      if (info.module !== undefined && info.module !== module) {
        throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: the notice is for module ${info.module}, this device updates ${module}`);
      }
      // Not newer: refused on the notice alone, unless the service trusts keys; then the owner's
      // signed package may allow the downgrade (judged on its signed head, before the download).
      const downgrade = compareVersions(info.version, running.version) <= 0;
      if (downgrade && this.trust === undefined) {
        throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: version ${info.version} is not newer than the running ${running.version}`);
      }
      if (info.size > port.info.otaSize) {
        throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: a ${info.size}-byte package does not fit the ${port.info.otaSize}-byte OTA partition`);
      }
      if (info.size < FIXED_HEADER_BYTES) throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: a ${info.size}-byte file cannot be an otadiff package`);
      const check: HeadCheck = { info, running: running.slot, runningVersion: running.version, downgrade, recorded: await port.securityCounter() };
      state = await this.loadState();
      const rec = state.download;
      const same =
        rec !== undefined && rec.version === info.version && rec.size === info.size && rec.sign === info.sign && rec.signMethod === info.signMethod && rec.isDiff === info.isDiff;
      let cp: DownloadCheckpoint | undefined = same ? rec.checkpoint : undefined;
      if (cp !== undefined && !(await resumable(cp))) cp = undefined;

      // The signed head (header + signature block) first: every check that can refuse the package
      // runs on it before anything is downloaded or erased.
      let headBytes: Uint8Array | undefined;
      let head: Uint8Array | undefined; // fetched now: the start of the download
      let etag: string | undefined;
      let fetched: { bytes: number; rangeHonoured: boolean } | undefined;
      if (cp !== undefined && cp.offset >= FIXED_HEADER_BYTES) {
        const need = headLength(await port.read(0, FIXED_HEADER_BYTES), info);
        if (cp.offset >= need) headBytes = await port.read(0, need);
        else cp = undefined; // the checkpoint stops inside the head: start over
      }
      if (headBytes === undefined) {
        const h = await this.fetchHead(info, hash, signal);
        head = h.bytes;
        headBytes = h.bytes.subarray(0, h.need);
        etag = h.etag;
        fetched = { bytes: h.bytes.length, rangeHonoured: h.rangeHonoured };
        cp = undefined;
      }
      const checked = this.checkHead(headBytes, check);
      const header = checked.header;
      if (header.mode !== 'raw') await this.checkOldImage(header, running.slot);
      if (fetched !== undefined) this.emit({ type: 'header', header, fetched: fetched.bytes, rangeHonoured: fetched.rangeHonoured, signature: checked.signature });
      const target = checked.target;

      // Prepare the OTA partition (AliOS' init: 0 erases, a breakpoint resumes).
      if (cp === undefined) {
        await port.init(0);
        state.download = { version: info.version, size: info.size, signMethod: info.signMethod, sign: info.sign, isDiff: info.isDiff };
        if (head !== undefined) {
          // The head bytes already fetched are the start of the download.
          const bytes = head.subarray(0, Math.min(head.length, info.size));
          await port.write(0, bytes);
          const hasher = await createHasher(hash);
          hasher.update(bytes);
          cp = { algorithm: hash, offset: bytes.length, totalSize: info.size, expectedDigest: info.sign, hashState: hasher.save() };
          if (etag !== undefined) cp.etag = etag;
          state.download.checkpoint = cp;
        }
        await this.saveState(state);
      } else {
        await port.init(cp.offset);
      }
      this.emit({ type: 'download-start', offset: cp?.offset ?? 0, total: info.size, resumed: head === undefined && cp !== undefined });

      const stepPct = this.opts.progressStep ?? 10;
      let lastPct = -stepPct;
      const st = state;
      // NOR bytes cannot be programmed twice: if the downloader rewinds (the server's
      // representation changed and it starts over), clear the partition from there first.
      let written = cp?.offset ?? 0;
      const sink = async (offset: number, bytes: Uint8Array): Promise<void> => {
        if (offset < written) await port.init(offset);
        await port.write(offset, bytes);
        written = offset + bytes.length;
      };
      const common = {
        sink,
        hash,
        expectedSize: info.size,
        expectedDigest: info.sign,
        state: cp,
        signal,
        retries: dl.retries,
        backoff: dl.backoff,
        sleep: dl.sleep,
        onCheckpoint: async (c: DownloadCheckpoint) => {
          st.download!.checkpoint = c;
          await this.saveState(st);
          this.emit({ type: 'download', offset: c.offset, total: c.totalSize });
          const pct = Math.floor((c.offset * 100) / c.totalSize);
          if (pct >= lastPct + stepPct && pct < 100) {
            lastPct = pct;
            void this.report(pct, 'downloading');
          }
        },
      };
      const result = info.url.startsWith('coap:')
        ? await coapDownload({ ...common, url: info.url, blockSize: dl.coapBlockSize, ackTimeoutMs: dl.ackTimeoutMs })
        : await download({ ...common, url: info.url, timeoutMs: dl.timeoutMs, ca: dl.ca });
      this.emit({ type: 'downloaded', result });

      // Verify what the flash holds, not what the network delivered: the notice's digest (and
      // digestsign), then the signed head again and the payload against its signed SHA-256.
      const flashed = await this.checkFlashedHead(check);
      const { digest, sha256, payloadSha256 } = await this.hashPackage(info.size, hash, recordsOffset(flashed.header));
      verifyPackage(info, digest, info.size, { publicKey: this.opts.publicKey, requireDigestSign: this.opts.requireDigestSign });
      if (!Buffer.from(payloadSha256).equals(Buffer.from(flashed.header.payloadSha256))) {
        throw new Refusal(OtaStep.VERIFY_FAILED, 'refused: the records in flash do not match the payload SHA-256 of the signed header', true);
      }
      this.emit({
        type: 'verified',
        sha256: Buffer.from(sha256).toString('hex'),
        digestsign: info.digestsign !== undefined && this.opts.publicKey !== undefined,
        signature: flashed.signature,
        securityCounter: flashed.header.securityCounter,
      });

      const firmwareType = flashed.header.mode === 'raw' ? 'raw' : 'diff';
      // Pending first: a power cut before set_boot completes just boots the old image.
      state.pending = { slot: target, version: info.version, size: flashed.header.newSize, firmwareType };
      await this.saveState(state);
      await port.setBoot({
        result: 'finish',
        firmwareType,
        splitSize: firmwareType === 'diff' ? flashed.header.splitSize : undefined,
        diffVersion: firmwareType === 'diff' ? flashed.header.diffVersion : undefined,
        rollback: this.opts.rollback ?? true,
        packageLength: info.size,
        packageSha256: sha256,
      });
      delete state.download;
      await this.saveState(state);
      this.emit({ type: 'set-boot', firmwareType, slot: target, version: info.version });
      await this.report(100, `verified; rebooting into the ${firmwareType === 'diff' ? 'restore' : 'image copy'}`);
      return true;
    } catch (e) {
      if (isPowerCut(e)) throw e;
      if (epoch !== this.epoch) return false; // stopped meanwhile: the checkpoint stays for later
      if (restartsDownload(e) && state?.download !== undefined) {
        delete state.download;
        await this.saveState(state).catch(() => {});
      }
      const step = stepFor(e);
      const error = e instanceof Error ? e : new Error(String(e));
      this.emit({ type: 'failed', step, error });
      await this.report(step, error.message);
      return false;
    } finally {
      if (this.abort === abort) this.abort = undefined;
    }
  }

  /** The package's signed head from the network: HEAD_FETCH_BYTES first, the rest of it when longer. */
  private async fetchHead(
    info: UpgradeInfo,
    hash: 'sha256' | 'md5',
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; need: number; etag?: string; rangeHonoured: boolean }> {
    const dl = this.opts.download ?? {};
    const common = {
      url: info.url,
      totalSize: info.size,
      hash,
      expectedDigest: info.sign,
      signal,
      timeoutMs: dl.timeoutMs,
      retries: dl.retries,
      backoff: dl.backoff,
      sleep: dl.sleep,
      ca: dl.ca,
      ackTimeoutMs: dl.ackTimeoutMs,
    };
    const first = await fetchPackageHead({ ...common, length: HEAD_FETCH_BYTES });
    const need = headLength(first.bytes.subarray(0, FIXED_HEADER_BYTES), info);
    let bytes = first.bytes;
    if (bytes.length < need) {
      const rest = await fetchPackageHead({ ...common, offset: bytes.length, length: need - bytes.length });
      const whole = new Uint8Array(bytes.length + rest.bytes.length);
      whole.set(bytes);
      whole.set(rest.bytes, bytes.length);
      bytes = whole;
    }
    return { bytes, need, etag: first.etag, rangeHonoured: first.rangeHonoured };
  }

  /** The signed head as the flash holds it after the download, checked again (it is what set_boot hands over). */
  private async checkFlashedHead(c: HeadCheck): Promise<CheckedHead> {
    try {
      const need = headLength(await this.port.read(0, FIXED_HEADER_BYTES), c.info);
      return this.checkHead(await this.port.read(0, need), c);
    } catch (e) {
      if (e instanceof Refusal) throw new Refusal(e.step, e.message.replace(/^refused: /, 'refused: in flash: '), true);
      throw e;
    }
  }

  /** Slot the package's image goes to. */
  private targetOf(h: Pick<PackageHeader, 'mode'>, running: Slot): Slot {
    if (h.mode === 'raw') return this.port.info.slots.includes('B') ? other(running) : running;
    return h.mode === 'ab' ? other(running) : running;
  }

  /**
   * Checks the signed head (header + signature block) against the trusted keys, the recorded security
   * counter, the notice and this device; throws Refusal. Trust first: nothing else in a header no
   * trusted key signed means anything.
   */
  private checkHead(bytes: Uint8Array, c: HeadCheck): CheckedHead {
    const refuse = (why: string, step: OtaStepError = OtaStep.UPGRADE_FAILED): never => {
      throw new Refusal(step, `refused: ${why}`);
    };
    let h!: PackageHeader;
    try {
      h = parseHeader(bytes);
    } catch (e) {
      if (e instanceof PackageError) refuse(`not a usable otadiff package: ${e.message}`);
      throw e;
    }
    if (bytes.length < recordsOffset(h)) refuse('the package is shorter than its signed head');
    const signed = bytes.subarray(0, h.headerLength);
    const signature = bytes.subarray(h.headerLength, recordsOffset(h));
    try {
      if (this.trust !== undefined) checkTrust(h, signed, signature, { keys: this.trust, securityCounter: c.recorded });
      else checkSecurityCounter(h, c.recorded);
    } catch (e) {
      if (!(e instanceof PackageError)) throw e;
      refuse(e.message, e.code === 'security-counter' ? OtaStep.UPGRADE_FAILED : OtaStep.VERIFY_FAILED);
    }
    const algorithm = this.trust === undefined ? null : signatureAlgorithmOf(h.signatureType);
    const info = c.info;
    if (c.downgrade && !h.allowDowngrade) {
      refuse(`version ${info.version} is not newer than the running ${c.runningVersion}, and the signed package does not allow a downgrade`);
    }
    // Its length against the notice's: headLength() checked it on these same bytes before they were fetched.
    const raw = h.mode === 'raw';
    if (raw !== (info.isDiff === 0)) {
      refuse(info.isDiff === 1 ? 'the notice announces a diff, the package is a full image (raw)' : `the notice announces a full image, the package is a ${h.mode} diff`);
    }
    if (h.firmwareVersion !== '' && !sameVersion(h.firmwareVersion, info.version)) {
      refuse(`the notice announces version ${info.version}, the signed package is version ${h.firmwareVersion}`);
    }
    const { info: pi } = this.port;
    const target = this.targetOf(h, c.running);
    const room = pi.slotSize[target] ?? 0;
    if (raw) {
      if (h.newSize > room) refuse(`a ${h.newSize}-byte image does not fit slot ${target} (${room} bytes)`);
      return { header: h, signature: algorithm, target };
    }
    if (info.splitSize !== undefined && info.splitSize !== h.splitSize) refuse(`the notice's split size ${info.splitSize} differs from the package's ${h.splitSize}`);
    if (h.splitSize % pi.sectorSize !== 0) refuse(`split size ${h.splitSize} is not a multiple of the ${pi.sectorSize}-byte sector`);
    const ab = h.mode === 'ab';
    if (ab && !pi.slots.includes('B')) refuse('an A/B package needs a second slot, this device restores in place');
    // In place, a restored chunk waits in one of two backup slots while the next is decoded.
    const backup = backupBytes(h);
    if (!ab && pi.backupSize < backup) refuse(`an in-place restore of ${h.splitSize}-byte chunks needs ${backup} bytes of backup, this device has ${pi.backupSize}`);
    if (h.newSize > room || (!ab && h.oldSize > room)) refuse(`the image does not fit slot ${target} (${room} bytes)`);
    if (h.oldSize > (pi.slotSize[c.running] ?? 0)) refuse(`the package's old image is larger than slot ${c.running}`);
    return { header: h, signature: algorithm, target };
  }

  private async checkOldImage(h: PackageHeader, running: Slot): Promise<void> {
    const sha = createHash('sha256');
    for (let off = 0; off < h.oldSize; off += HASH_BLOCK) {
      sha.update(await this.port.readImage(off, Math.min(HASH_BLOCK, h.oldSize - off)));
    }
    const have = sha.digest();
    if (!have.equals(Buffer.from(h.oldSha256))) {
      throw new Refusal(
        OtaStep.UPGRADE_FAILED,
        `refused: the diff was made for an image with SHA-256 ${Buffer.from(h.oldSha256).toString('hex').slice(0, 16)}…, slot ${running} holds ${have.toString('hex').slice(0, 16)}…`,
      );
    }
  }

  /** Digest (per signMethod), SHA-256, and SHA-256 of the records (from `payloadFrom`) of the package in the OTA partition. */
  private async hashPackage(size: number, alg: 'sha256' | 'md5', payloadFrom: number): Promise<{ digest: string; sha256: Uint8Array; payloadSha256: Uint8Array }> {
    const sha = createHash('sha256');
    const payload = createHash('sha256');
    const sign = alg === 'sha256' ? undefined : createHash(alg);
    for (let off = 0; off < size; off += HASH_BLOCK) {
      const block = await this.port.read(off, Math.min(HASH_BLOCK, size - off));
      sha.update(block);
      sign?.update(block);
      if (off + block.length > payloadFrom) payload.update(block.subarray(Math.max(0, payloadFrom - off)));
    }
    const sha256 = sha.digest();
    return { digest: sign === undefined ? sha256.toString('hex') : sign.digest('hex'), sha256: new Uint8Array(sha256), payloadSha256: new Uint8Array(payload.digest()) };
  }

  private async reboot(epoch: number): Promise<void> {
    if (epoch !== this.epoch) return;
    this.emit({ type: 'rebooting' });
    this.status = 'booting';
    this.running = undefined;
    await this.disconnect();
    if (epoch !== this.epoch) return;
    try {
      await this.powerOn(epoch);
    } catch (e) {
      if (isPowerCut(e)) return this.die(e as Error);
      this.status = 'off';
      await this.disconnect();
      throw e;
    }
  }
}

/** The device's OTA service (AliOS' ota_service_init). Call start() to power it on. */
export function createOtaService(options: OtaServiceOptions = {}): OtaService {
  return new Service(options);
}


