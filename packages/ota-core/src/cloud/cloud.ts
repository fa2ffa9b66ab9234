// The cloud side in one process: the embedded MQTT broker (or an external one), the
// file server with signed expiring URLs over the data directory's files/ (HTTP or HTTPS),
// a CoAP server (packages by Block2, and the OTA notices for CoAP devices), and the job
// logic: when a device informs a version older than its job's target (or a job is
// created for devices known to be older), push an upgrade notice — a diff from the
// installed version when the store has that image, else the full image as a raw
// (OTA_RAW) package — and follow the device's progress until it informs the target
// version. With a package signing key every package it serves is signed, with the
// target's firmware version and security counter in the signed header.

import type { KeyLike, KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { loadPrivateKey } from '@otadiff/diff-gen';
import { startBroker, type BrokerHandle } from './broker.js';
import { CloudStore, type CloudStatus, type DeviceStatus, type OtaJob, type StoredPackage } from './cloud-store.js';
import { EventHub } from '../protocol/event-hub.js';
import { startCoapFileServer, type CoapFileServerHandle } from './coap-file-server.js';
import { startFileServer, type FileServerHandle, type FileServerOptions } from './http-server.js';
import type { MqttSignMethod, ServiceCredential } from '../protocol/mqtt-auth.js';
import { createCoapNoticeServer, type CoapNoticeServer } from './coap-notices.js';
import { connectOtaCloud, type OtaCloudClient } from './mqtt-client.js';
import type { DeviceRef } from '../protocol/topics.js';
import { buildUpgradeMessage, type InformMessage, type ProgressMessage, type SignMethod, type UpgradeInfo } from '../protocol/messages.js';
import { createDigestSign, fileDigest } from '../protocol/signature.js';
import { compareVersions } from '../protocol/version.js';

export interface OtaCloudOptions {
  dataDir: string;
  /** Interface for the broker and the file server (default 127.0.0.1). */
  host?: string;
  /** Embedded broker port (default 0: any free port). */
  mqttPort?: number;
  /** File server port (default 0). */
  httpPort?: number;
  /** CoAP server port: packages over CoAP block-wise transfer (default 0). */
  coapPort?: number;
  /** Host put in download URLs (default: `host`). */
  publicHost?: string;
  /** Port put in coap:// download URLs (default: the CoAP server's; a relay in front of it, say). */
  publicCoapPort?: number;
  /** How devices download unless their job says otherwise (default 'http'). */
  downloadProtocol?: 'http' | 'coap';
  /** Use this broker instead of the embedded one; its authentication is its own business. */
  broker?: string;
  /** The cloud's sign-in at the broker (default: user:pass in `broker`, else the data directory's generated credential). */
  service?: ServiceCredential;
  allowedSignMethods?: readonly MqttSignMethod[];
  /** Lifetime of a signed download URL (default 1 h). */
  urlTtlMs?: number;
  /** Digest of files in notices (default SHA256). */
  signMethod?: SignMethod;
  /** RSA private key: notices then carry a digestsign (AliOS' check of the notice, not of the package). */
  signingKey?: KeyLike;
  /**
   * Private key (Ed25519, EC P-256 or RSA-2048; a KeyObject or PEM text) that signs every package the
   * cloud serves, diffs and raw (OTA_RAW) packages alike. Devices configured with its public key
   * refuse anything else.
   */
  packageSigningKey?: KeyObject | string;
  /** Serve packages over HTTPS with this PEM key and certificate (devices then need to trust it: `download.ca`). */
  tls?: FileServerOptions['tls'];
  /** Misbehaviour knobs of the file server (tests and the demo). */
  fileServer?: Pick<FileServerOptions, 'ignoreRange' | 'dropAfterBytes' | 'dropTimes' | 'failFirst'>;
  /** Re-read the data directory this often (ms; default 1000; 0 = never). */
  pollMs?: number;
  log?: (line: string) => void;
}

export type CloudEvent =
  | { type: 'inform'; device: DeviceRef; version: string }
  | { type: 'pushed'; device: DeviceRef; job: OtaJob; info: UpgradeInfo; fromVersion: string; isDiff: boolean }
  | { type: 'progress'; device: DeviceRef; step: number; desc: string }
  | { type: 'succeeded'; device: DeviceRef; job: OtaJob }
  | { type: 'failed'; device: DeviceRef; job: OtaJob; step: number; desc: string }
  | { type: 'error'; error: Error };

export interface OtaCloud {
  readonly store: CloudStore;
  readonly brokerUrl: string;
  readonly broker: BrokerHandle | undefined;
  readonly files: FileServerHandle;
  /** The CoAP server: packages (Block2) and, for CoAP devices, the OTA notices. */
  readonly coap: CoapFileServerHandle;
  /** Creates a job and notifies the devices already known to run an older version. */
  createJob(o: { productKey: string; version: string; devices?: string[]; downloadProtocol?: 'http' | 'coap' }): Promise<OtaJob>;
  status(): CloudStatus;
  on(listener: (e: CloudEvent) => void): () => void;
  waitFor(pred: (e: CloudEvent) => boolean, timeoutMs?: number): Promise<CloudEvent>;
  close(): Promise<void>;
}

const key = (d: DeviceRef): string => `${d.productKey}/${d.deviceName}`;

/** mqtt://user:pass@host: an external broker's own credentials for the cloud. */
function brokerUserinfo(url: string | undefined): ServiceCredential | undefined {
  if (url === undefined) return undefined;
  try {
    const u = new URL(url);
    return u.username === '' ? undefined : { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
  } catch {
    return undefined;
  }
}

export async function startOtaCloud(opts: OtaCloudOptions): Promise<OtaCloud> {
  const packageKey = typeof opts.packageSigningKey === 'string' ? loadPrivateKey(opts.packageSigningKey) : opts.packageSigningKey;
  const store = await CloudStore.open(opts.dataDir, { signingKey: packageKey });
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? (() => {});
  const hub = new EventHub<CloudEvent>();
  const service = opts.service ?? brokerUserinfo(opts.broker) ?? store.serviceCredential;
  const signMethod = opts.signMethod ?? 'SHA256';
  const ttl = opts.urlTtlMs ?? 3_600_000;
  const status = new Map<string, DeviceStatus>();
  for (const d of store.readStatus().devices) status.set(key(d), d);

  let broker: BrokerHandle | undefined;
  let files: FileServerHandle | undefined;
  let coap: CoapFileServerHandle | undefined;
  // Devices on the CoAP transport: informs and progress arrive here too (handlers below).
  const coapNotices: CoapNoticeServer = createCoapNoticeServer({
    registry: { getDeviceSecret: (pk, dn) => store.registry.getDeviceSecret(pk, dn) },
    allowedSignMethods: opts.allowedSignMethods,
    onAuth: (d) => coapNotices.clearNotice(d),
    onInform: (d, m) => onInform(d, m),
    onProgress: (d, m) => onProgress(d, m),
    onInvalid: (path, e) => log(`ignored a malformed CoAP request on ${path}: ${e.message}`),
  });
  let client: OtaCloudClient | undefined;
  let timer: NodeJS.Timeout | undefined;
  const cleanup = async (): Promise<void> => {
    clearInterval(timer);
    await client?.close().catch(() => {});
    await files?.close();
    await coap?.close();
    await broker?.close();
  };

  try {
    // The broker asks the current registry, which reload() may replace.
    if (opts.broker === undefined) {
      broker = await startBroker({
        registry: { getDeviceSecret: (pk, dn) => store.registry.getDeviceSecret(pk, dn) },
        service,
        host,
        port: opts.mqttPort ?? 0,
        allowedSignMethods: opts.allowedSignMethods,
      });
    }
    files = await startFileServer({ host, port: opts.httpPort ?? 0, root: store.filesDir, secret: store.urlSecret, tls: opts.tls, ...opts.fileServer });
    coap = await startCoapFileServer({ host, port: opts.coapPort ?? 0, onRequest: (req, res) => coapNotices.handle(req, res) });
    client = await connectOtaCloud(opts.broker ?? broker!.url, service, {
      clientId: `otadiff-cloud-${process.pid}-${randomBytes(3).toString('hex')}`,
      onInvalid: (topic, e) => log(`ignored a malformed message on ${topic}: ${e.message}`),
    });
  } catch (e) {
    await cleanup();
    throw e;
  }
  const fileServer = files;
  const coapServer = coap;
  const coapBase = `coap://${opts.publicHost ?? host}:${opts.publicCoapPort ?? coapServer.port}`;
  const defaultProtocol = opts.downloadProtocol ?? 'http';
  if (defaultProtocol !== 'http' && defaultProtocol !== 'coap') {
    await cleanup();
    throw new Error(`unknown download protocol ${String(defaultProtocol)}`);
  }
  /** The CoAP path each device was last given: one package per device stays served. */
  const coapPaths = new Map<string, string>();
  const cloudClient = client;
  const brokerUrl = opts.broker ?? broker!.url;
  const publicBase = opts.publicHost === undefined ? fileServer.url : `${opts.tls === undefined ? 'http' : 'https'}://${opts.publicHost}:${fileServer.port}`;

  const saveStatus = (): void => {
    try {
      store.writeStatus({ devices: [...status.values()] });
    } catch (e) {
      log(`cannot write status.json: ${(e as Error).message}`);
    }
  };
  const deviceStatus = (d: DeviceRef): DeviceStatus => {
    let s = status.get(key(d));
    if (s === undefined) status.set(key(d), (s = { productKey: d.productKey, deviceName: d.deviceName }));
    return s;
  };

  // One queue per device keeps inform/progress/push in arrival order.
  const queues = new Map<string, Promise<void>>();
  const enqueue = (d: DeviceRef, fn: () => Promise<void>): Promise<void> => {
    const k = key(d);
    const next = (queues.get(k) ?? Promise.resolve()).then(fn).catch((e: unknown) => {
      log(`${k}: ${(e as Error).message}`);
      hub.emit({ type: 'error', error: e as Error });
    });
    queues.set(k, next);
    void next.finally(() => {
      if (queues.get(k) === next) queues.delete(k);
    });
    return next;
  };

  const signedUrl = (path: string): string => {
    const url = fileServer.signUrl(path, Date.now() + ttl);
    return publicBase === fileServer.url ? url : url.replace(fileServer.url, publicBase);
  };

  /**
   * CoAP has no signed URLs here: each notice names the package under a fresh random
   * path segment (a capability nobody can guess), served until the device's next notice.
   */
  function coapUrl(d: DeviceRef, pkg: StoredPackage): string {
    const old = coapPaths.get(key(d));
    if (old !== undefined) coapServer.removeFile(old);
    const name = pkg.path.split('/').pop() ?? 'package';
    const path = `/pkg/${randomBytes(12).toString('hex')}/${encodeURIComponent(name)}`;
    coapServer.setFile(decodeURIComponent(path), pkg.bytes);
    coapPaths.set(key(d), decodeURIComponent(path));
    return `${coapBase}${path}`;
  }

  async function push(d: DeviceRef, job: OtaJob, fromVersion: string): Promise<void> {
    let pkg: StoredPackage | undefined;
    let isDiff = false;
    try {
      pkg = await store.diffPackage(d.productKey, fromVersion, job.version);
      isDiff = pkg !== undefined;
    } catch (e) {
      log(`${key(d)}: no diff ${fromVersion} -> ${job.version} (${(e as Error).message}); sending the full image`);
    }
    pkg ??= await store.rawPackage(d.productKey, job.version);
    if (pkg === undefined) throw new Error(`${d.productKey} has no firmware ${job.version}`);
    const sign = fileDigest(pkg.bytes, signMethod);
    const info: UpgradeInfo = {
      id: String(Date.now()),
      size: pkg.size,
      version: job.version,
      url: (job.downloadProtocol ?? defaultProtocol) === 'coap' ? coapUrl(d, pkg) : signedUrl(pkg.path),
      signMethod,
      sign,
      isDiff: isDiff ? 1 : 0,
    };
    // The notice repeats the package header's split size (AliOS' splictSize).
    if (isDiff && pkg.header !== undefined) info.splitSize = pkg.header.splitSize;
    if (opts.signingKey !== undefined) info.digestsign = createDigestSign(signMethod, sign, opts.signingKey);
    // Both transports: a CoAP device polls for it, an MQTT device gets it published.
    coapNotices.setNotice(d, buildUpgradeMessage(info, { allowedProtocols: ['http:', 'https:', 'coap:'] }));
    await cloudClient.pushUpgrade(d, info);
    const s = deviceStatus(d);
    s.job = { id: job.id, version: job.version, state: 'notified', isDiff, packageBytes: pkg.size, fromVersion, updatedAt: Date.now() };
    saveStatus();
    log(`${key(d)}: pushed ${job.version} as ${isDiff ? `a diff from ${fromVersion}` : 'the full image'} (${pkg.size} bytes)`);
    hub.emit({ type: 'pushed', device: d, job, info, fromVersion, isDiff });
  }

  /**
   * Push when the device runs an older version than its job's target and the job is
   * open for it. On an inform (the device booted) an unfinished job is pushed again,
   * which resumes an interrupted download; a new job only reaches devices it has not.
   */
  async function consider(d: DeviceRef, trigger: 'inform' | 'job'): Promise<void> {
    const s = deviceStatus(d);
    const job = store.jobFor(d.productKey, d.deviceName);
    if (job === undefined || s.version === undefined) return;
    const cmp = compareVersions(s.version, job.version);
    if (cmp >= 0) {
      if (cmp === 0 && s.job?.id === job.id && s.job.state !== 'succeeded') {
        s.job = { ...s.job, state: 'succeeded', updatedAt: Date.now() };
        saveStatus();
        log(`${key(d)}: job ${job.id} done, running ${s.version}`);
        hub.emit({ type: 'succeeded', device: d, job });
      }
      return;
    }
    // A failed device waits for a new job (no automatic retry loop).
    if (s.job?.id === job.id && (s.job.state === 'failed' || trigger === 'job')) return;
    await push(d, job, s.version);
  }

  function onInform(d: DeviceRef, m: InformMessage): void {
    if (store.registry.getDevice(d.productKey, d.deviceName) === undefined) return;
    coapNotices.clearNotice(d);
    void enqueue(d, async () => {
      const s = deviceStatus(d);
      s.version = m.version;
      s.lastSeen = Date.now();
      saveStatus();
      log(`${key(d)}: informs version ${m.version}`);
      hub.emit({ type: 'inform', device: d, version: m.version });
      await consider(d, 'inform');
    });
  }

  function onProgress(d: DeviceRef, m: ProgressMessage): void {
    if (store.registry.getDevice(d.productKey, d.deviceName) === undefined) return;
    coapNotices.clearNotice(d); // the device has the notice
    void enqueue(d, async () => {
      const s = deviceStatus(d);
      s.lastSeen = Date.now();
      hub.emit({ type: 'progress', device: d, step: m.step, desc: m.desc });
      const j = s.job;
      if (j === undefined || j.state === 'succeeded') {
        log(`${key(d)}: progress ${m.step} ${m.desc}`);
        return;
      }
      j.step = m.step;
      j.desc = m.desc;
      j.updatedAt = Date.now();
      if (m.step < 0) {
        j.state = 'failed';
        log(`${key(d)}: job ${j.id} failed (${m.step}): ${m.desc}`);
        const job = store.jobs().find((x) => x.id === j.id);
        if (job) hub.emit({ type: 'failed', device: d, job, step: m.step, desc: m.desc });
      } else {
        j.state = m.step >= 100 ? 'downloaded' : 'downloading';
        log(`${key(d)}: ${m.step}% ${m.desc}`);
      }
      saveStatus();
    });
  }

  cloudClient.onInform(onInform);
  cloudClient.onProgress(onProgress);

  // Jobs created by `otadiff serve job` in another process show up here.
  const knownJobs = new Set(store.jobs().map((j) => j.id));
  const onNewJobs = (): void => {
    for (const j of store.jobs()) {
      if (knownJobs.has(j.id)) continue;
      knownJobs.add(j.id);
      log(`job ${j.id}: ${j.productKey} -> ${j.version} for ${j.devices === 'all' ? 'all devices' : j.devices.join(', ')}`);
      for (const s of status.values()) if (s.productKey === j.productKey) void enqueue(s, () => consider(s, 'job'));
    }
  };
  if ((opts.pollMs ?? 1000) > 0) {
    timer = setInterval(() => {
      store
        .reload()
        .then((changed) => (changed ? onNewJobs() : undefined))
        .catch((e: unknown) => log(`reload: ${(e as Error).message}`));
    }, opts.pollMs ?? 1000);
    timer.unref();
  }

  let closing: Promise<void> | undefined;
  return {
    store,
    brokerUrl,
    broker,
    files: fileServer,
    coap: coapServer,
    async createJob(o) {
      const job = store.createJob(o);
      onNewJobs();
      return job;
    },
    status: () => ({ devices: [...status.values()].map((d) => ({ ...d, ...(d.job ? { job: { ...d.job } } : {}) })) }),
    on: (l) => hub.on(l),
    waitFor: (pred, timeoutMs) => hub.waitFor(pred, timeoutMs, 'cloud event'),
    close() {
      closing ??= (async () => {
        await Promise.allSettled([...queues.values()]);
        await cleanup();
        saveStatus();
      })();
      return closing;
    },
  };
}
