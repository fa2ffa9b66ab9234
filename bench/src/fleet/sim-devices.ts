// A child process of the fleet bench holding a slice of the simulated fleet. Every device is a real
// MQTT connection with its own Aliyun HMAC sign-in; it reports its version, and on a notice fetches
// the package's signed head with a Range request, downloads the rest with Range (resuming through
// dropped connections), checks the SHA-256, reports progress and, after a simulated restore, its new
// version. The devices of the restore sample are the real OTA service on simulated flash instead
// (the restore runs for real). A device marked to fail has a flash fault (flash-fault.ts): it
// downloads, finds its flash does not hold the package and reports a verify failure, as a real
// device does. Events go to the parent in batches over IPC.

import { createFlashDirPort, createHasher, createOtaService, download, DownloadError, connectOtaDevice, fetchPackageHead, HEAD_FETCH_BYTES, OtaStep, type OtaDeviceClient, type UpgradeInfo } from '@otadiff/ota-core';
import { stuckOtaFlash, withStuckBytes } from './flash-fault.js';

export interface SimDeviceSpec {
  name: string;
  secret: string;
  /** A flash directory: this device runs the real OTA service and restore. */
  flashDir?: string;
  /** Its OTA partition has stuck bytes: every update fails its verify. */
  fails?: boolean;
}

export interface SimConfig {
  brokerUrl: string;
  productKey: string;
  fromVersion: string;
  toVersion: string;
  devices: SimDeviceSpec[];
  /** Index of devices[0] in the whole fleet (events carry fleet indexes). */
  base: number;
  connectPerSecond: number;
}

export type SimEventKind = 'notice' | 'updated' | 'failed' | 'lost-link' | 'relinked';
export type ParentMessage = { type: 'start'; config: SimConfig } | { type: 'stop' };
export type ChildMessage =
  | { type: 'connected'; n: number }
  | { type: 'ready'; n: number; failedToConnect: number }
  | { type: 'events'; events: Array<[SimEventKind, number, number]>; published: number }
  | { type: 'error'; message: string }
  | { type: 'stopped' };

const send = (m: ChildMessage): void => void process.send?.(m);
let published = 0;
let events: Array<[SimEventKind, number, number]> = [];
const emit = (kind: SimEventKind, index: number): void => void events.push([kind, index, Date.now()]);
const flush = (): void => {
  if (events.length === 0 && published === 0) return;
  send({ type: 'events', events, published });
  events = [];
  published = 0;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const backoff = { initialMs: 200, maxMs: 2000 };

interface Device {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A failed check of the package, reported as the step it is (the real service's refusal codes). */
class StepError extends Error {
  constructor(
    readonly step: number,
    message: string,
  ) {
    super(message);
  }
}

const stepOf = (e: unknown): number =>
  e instanceof StepError ? e.step : e instanceof DownloadError && (e.code === 'DIGEST_MISMATCH' || e.code === 'SIZE_MISMATCH') ? OtaStep.VERIFY_FAILED : OtaStep.DOWNLOAD_FAILED;

/** The simulated device: download and digest checks for real, the restore simulated. */
function simDevice(cfg: SimConfig, spec: SimDeviceSpec, index: number): Device {
  let version = cfg.fromVersion;
  let client: OtaDeviceClient | undefined;
  let busy = false;
  let stopping = false;
  const identity = { productKey: cfg.productKey, deviceName: spec.name, deviceSecret: spec.secret };
  /** A report over the current link; a link that is gone (or never answers) loses it, as a device's would. */
  const publish = async (fn: (c: OtaDeviceClient) => Promise<void>): Promise<void> => {
    const c = client;
    if (c === undefined || !c.mqtt.connected) return;
    published++;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([fn(c).catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
  };
  async function update(info: UpgradeInfo): Promise<void> {
    try {
      const head = await fetchPackageHead({ url: info.url, length: HEAD_FETCH_BYTES, totalSize: info.size, retries: 20, backoff });
      await publish((c) => c.reportProgress(0, 'downloading'));
      const hasher = await createHasher('sha256');
      hasher.update(head.bytes);
      // What the flash reads back, hashed only on a device with the fault (the others hold what they got).
      const flashed = spec.fails === true ? await createHasher('sha256') : undefined;
      flashed?.update(withStuckBytes(0, head.bytes));
      const sink = async (offset: number, bytes: Uint8Array): Promise<void> => void flashed?.update(withStuckBytes(offset, bytes));
      const state = { algorithm: 'sha256' as const, offset: head.bytes.length, totalSize: info.size, expectedDigest: info.sign, hashState: hasher.save(), ...(head.etag === undefined ? {} : { etag: head.etag }) };
      if (head.bytes.length < info.size) {
        await download({ url: info.url, sink, hash: 'sha256', expectedSize: info.size, expectedDigest: info.sign, state, retries: 20, backoff });
      } else if (hasher.digest('hex') !== info.sign.toLowerCase()) throw new StepError(OtaStep.VERIFY_FAILED, 'the package does not match its digest');
      if (flashed !== undefined && flashed.digest('hex') !== info.sign.toLowerCase()) {
        throw new StepError(OtaStep.VERIFY_FAILED, 'refused: the package read back from flash does not match the SHA-256 of the notice');
      }
      await publish((c) => c.reportProgress(100, 'verified; rebooting into the restore'));
      await sleep(20); // the simulated restore and reboot
      version = info.version;
      await publish((c) => c.reportVersion(version));
      emit('updated', index);
    } catch (e) {
      await publish((c) => c.reportProgress(stepOf(e), (e as Error).message.slice(0, 200)));
      emit('failed', index);
    } finally {
      busy = false;
    }
  }
  async function link(): Promise<void> {
    const c = await connectOtaDevice(cfg.brokerUrl, identity, { upgradeParse: { allowedProtocols: ['http:', 'https:'] } });
    client = c;
    c.mqtt.on('error', () => {});
    c.onUpgrade((info) => {
      emit('notice', index);
      if (busy || info.version === version) return;
      busy = true;
      void update(info);
    });
    c.mqtt.once('close', () => {
      if (stopping || client !== c) return;
      client = undefined;
      emit('lost-link', index);
      void relink(1);
    });
    published++;
    await c.reportVersion(version);
  }
  async function relink(attempt: number): Promise<void> {
    await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2));
    if (stopping) return;
    try {
      await link();
      emit('relinked', index);
    } catch {
      void relink(attempt + 1);
    }
  }
  return {
    start: link,
    async stop() {
      stopping = true;
      await client?.close().catch(() => {});
    },
  };
}

/** A device of the restore sample: the real OTA service on a flash directory. */
function realDevice(cfg: SimConfig, spec: SimDeviceSpec, index: number): Device {
  let otaStart: number | undefined;
  const port = createFlashDirPort(spec.flashDir!, spec.fails === true ? { wrapFlash: (f) => stuckOtaFlash(f, () => otaStart) } : {});
  otaStart = port.layout.ota.offset;
  const svc = createOtaService({
    productKey: cfg.productKey,
    deviceName: spec.name,
    deviceSecret: spec.secret,
    broker: cfg.brokerUrl,
    port,
    download: { retries: 20, backoff },
    onEvent: (e) => {
      if (e.type === 'notice') emit('notice', index);
      else if (e.type === 'inform' || e.type === 'progress') published++;
      else if (e.type === 'disconnected') emit('lost-link', index);
      else if (e.type === 'confirmed' && e.version === cfg.toVersion) emit('updated', index);
      else if (e.type === 'failed') emit('failed', index);
    },
  });
  return {
    start: () => svc.start(),
    async stop() {
      await svc.close();
    },
  };
}

async function run(cfg: SimConfig): Promise<Device[]> {
  const devices = cfg.devices.map((d, i) => (d.flashDir === undefined ? simDevice(cfg, d, cfg.base + i) : realDevice(cfg, d, cfg.base + i)));
  let connected = 0;
  let failed = 0;
  const gap = 1000 / cfg.connectPerSecond;
  const t0 = Date.now();
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < devices.length; i++) {
    const due = t0 + i * gap;
    if (due > Date.now()) await sleep(due - Date.now());
    const dev = devices[i];
    pending.push(
      (async () => {
        for (let attempt = 1; ; attempt++) {
          try {
            await dev.start();
            break;
          } catch (e) {
            if (attempt >= 5) {
              failed++;
              send({ type: 'error', message: `${cfg.devices[i].name}: ${(e as Error).message}` });
              return;
            }
            await sleep(500 * attempt);
          }
        }
        if (++connected % 500 === 0) send({ type: 'connected', n: connected });
      })(),
    );
  }
  await Promise.all(pending);
  send({ type: 'ready', n: connected, failedToConnect: failed });
  return devices;
}

let fleet: Promise<Device[]> | undefined;
const ticker = setInterval(flush, 200);
process.on('message', (m: ParentMessage) => {
  if (m.type === 'start') fleet = run(m.config);
  else if (m.type === 'stop') {
    void (async () => {
      const devices = (await fleet) ?? [];
      await Promise.all(devices.map((d) => d.stop().catch(() => {})));
      flush();
      clearInterval(ticker);
      send({ type: 'stopped' });
      process.disconnect?.();
    })();
  }
});
process.on('disconnect', () => process.exit(0));
