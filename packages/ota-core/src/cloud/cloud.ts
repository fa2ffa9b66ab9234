// One cloud worker: the embedded MQTT broker (or an external one), the file server with signed
// expiring URLs over the data directory's objects (HTTP or HTTPS), a CoAP server (packages by
// Block2, and the OTA notices for CoAP devices), and the job logic over the store's database:
//
// - Device messages: an inform records the device's version and moves its current job (queued for
//   a notice, succeeded, …); a progress report moves the job along (device-status.ts). Messages are
//   acknowledged to the broker once their row update committed.
// - Pushes: the job queue is drained at a bounded rate (pushRate notices a second): each notice
//   names a diff from the installed version when the store has that image, else the full image as a
//   raw (OTA_RAW) package, made once and then served from its object (push-queue.ts, packages.ts).
// - Several workers (an external broker and PostgreSQL, or one SQLite file on one machine): shared
//   subscriptions deal messages out, the queue's row locks decide who pushes which device, and a
//   worker whose heart stopped is taken over by another (workers.ts, mqtt-client.ts drainSession).
//
// With a package signing key every package it serves is signed, with the target's firmware version
// and security counter in the signed header.

import type { KeyLike, KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { loadPrivateKey } from '@otadiff/diff-gen';
import { startBroker, type BrokerHandle } from './broker.js';
import { CloudStore, type CloudStatus, type OtaJob } from './cloud-store.js';
import { startCoapFileServer, type CoapFileServerHandle } from './coap-file-server.js';
import { createCoapNoticeServer, type CoapNoticeServer } from './coap-notices.js';
import { recordInform, recordProgress } from './device-status.js';
import { startFileServer, type FileServerHandle, type FileServerOptions } from './http-server.js';
import { connectOtaCloud, drainSession, type OtaCloudClient } from './mqtt-client.js';
import type { PackageMeta } from './packages.js';
import { claimPushes, expireNotices, failPush, recordPush, unclaim, type Claim } from './push-queue.js';
import { activeRollouts } from './rollouts.js';
import { claimCancels, tickRollouts } from './rollout-tick.js';
import { startApiServer, type ApiServerHandle } from './api/server.js';
import { claimDead, deadWorkers, heartbeat, newWorkerId, registerWorker, setWorkerState, workerClientId } from './workers.js';
import { EventHub } from '../protocol/event-hub.js';
import { buildCancelMessage, buildUpgradeMessage, type InformMessage, type ProgressMessage, type SignMethod, type UpgradeInfo } from '../protocol/messages.js';
import type { MqttSignMethod, ServiceCredential } from '../protocol/mqtt-auth.js';
import { createDigestSign } from '../protocol/signature.js';
import { deviceKey as key, type DeviceRef } from '../protocol/topics.js';

export interface OtaCloudOptions {
  /** Files (objects) and, without `db`, the SQLite database DATA/otadiff.db. */
  dataDir: string;
  /** postgres://… : the database several workers share. */
  db?: string;
  /** An open store to use (the cloud then leaves it open at close). */
  store?: CloudStore;
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
  /** Base of download URLs instead of this worker's file server (a load balancer in front of all workers). */
  publicUrl?: string;
  /** Port put in coap:// download URLs (default: the CoAP server's; a relay in front of it, say). */
  publicCoapPort?: number;
  /** How devices download unless their job says otherwise (default 'http'). */
  downloadProtocol?: 'http' | 'coap';
  /** Use this broker instead of the embedded one (MQTT 5: shared subscriptions); its authentication is its own business. */
  broker?: string;
  /** The cloud's sign-in at the broker (default: user:pass in `broker`, else the store's generated credential). */
  service?: ServiceCredential;
  allowedSignMethods?: readonly MqttSignMethod[];
  /** Lifetime of a signed download URL (default 15 min; each is bound to its device and job). */
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
  /** The embedded broker also speaks MQTT over TLS on this port (0 = any free port), with `tls`'s key and certificate. */
  mqttTlsPort?: number;
  /** Misbehaviour knobs of the file server (tests and the demo). */
  fileServer?: Pick<FileServerOptions, 'ignoreRange' | 'dropAfterBytes' | 'dropTimes' | 'failFirst'>;
  /** Notices a second this worker sends at most (default 200; see README). */
  pushRate?: number;
  /** Look for queued devices (jobs created by other processes) this often (ms; default 1000; 0: only when told). */
  pollMs?: number;
  /** A notice without any answer for this long is sent again (ms; default 300000), at most maxPushes times in all (default 3). */
  noticeTimeoutMs?: number;
  maxPushes?: number;
  /** This worker's name in the workers table (default: a fresh one). */
  workerId?: string;
  /** Heartbeat period and the silence after which a worker is taken over (ms; default 1000 and 5000). */
  heartbeatMs?: number;
  staleWorkerMs?: number;
  /** Run each running rollout's controller this often (ms; default 1000; 0: only when told, `tick()`). */
  rolloutTickMs?: number;
  /** Look for revoked devices (removed, secret rotated by another process) this often (ms; default 1000). */
  revocationPollMs?: number;
  /** Serve the management API and the console on this port (api/server.ts); undefined: none. */
  apiPort?: number;
  /** Interface of the API (default: `host`). */
  apiHost?: string;
  /** One line per message and push (default true); warnings and worker events are always logged. */
  verbose?: boolean;
  log?: (line: string) => void;
}

export type CloudEvent =
  | { type: 'inform'; device: DeviceRef; version: string }
  | { type: 'pushed'; device: DeviceRef; job: OtaJob; info: UpgradeInfo; fromVersion: string; isDiff: boolean }
  | { type: 'progress'; device: DeviceRef; step: number; desc: string }
  | { type: 'succeeded'; device: DeviceRef; job: OtaJob }
  | { type: 'failed'; device: DeviceRef; job: OtaJob; step: number; desc: string }
  | { type: 'takeover'; worker: string; messages: number }
  | { type: 'rollout'; id: string; event: string }
  | { type: 'cancel-sent'; device: DeviceRef; version: string }
  | { type: 'revoked'; device: DeviceRef; sessions: number }
  | { type: 'error'; error: Error };

export interface OtaCloud {
  readonly store: CloudStore;
  readonly brokerUrl: string;
  /** mqtts:// URL of the embedded broker's TLS listener (mqttTlsPort), when there is one. */
  readonly brokerTlsUrl?: string;
  readonly broker: BrokerHandle | undefined;
  readonly files: FileServerHandle;
  /** The CoAP server: packages (Block2) and, for CoAP devices, the OTA notices. */
  readonly coap: CoapFileServerHandle;
  /** This worker's id in the workers table. */
  readonly workerId: string;
  /** The management API and console, when `apiPort` was given. */
  readonly api: ApiServerHandle | undefined;
  /** Runs the rollouts' controllers and sends pending cancel notices now (what the timer does). */
  tick(): Promise<void>;
  /** Ends the live sessions of a device (removed, or its secret rotated) on this worker's broker and CoAP server. */
  revoke(d: DeviceRef): number;
  /** Creates a job and starts pushing it to the devices already known to run an older version. */
  createJob(o: { productKey: string; version: string; devices?: string[]; downloadProtocol?: 'http' | 'coap' }): Promise<OtaJob>;
  status(): Promise<CloudStatus>;
  on(listener: (e: CloudEvent) => void): () => void;
  waitFor(pred: (e: CloudEvent) => boolean, timeoutMs?: number): Promise<CloudEvent>;
  close(): Promise<void>;
}

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
  const log = opts.log ?? (() => {});
  const verbose = opts.verbose !== false ? log : () => {};
  const ownsStore = opts.store === undefined;
  const store = opts.store ?? (await CloudStore.open(opts.dataDir, { signingKey: packageKey, db: opts.db, durability: 'fast', log }));
  const host = opts.host ?? '127.0.0.1';
  const hub = new EventHub<CloudEvent>();
  const service = opts.service ?? brokerUserinfo(opts.broker) ?? store.serviceCredential;
  const signMethod = opts.signMethod ?? 'SHA256';
  const ttl = opts.urlTtlMs ?? 900_000;
  const shared = opts.broker !== undefined;
  const pushRate = opts.pushRate ?? 200;
  if (!(pushRate > 0) || !Number.isFinite(pushRate)) throw new Error(`pushRate must be a positive number of notices a second, not ${pushRate}`);
  const defaultProtocol = opts.downloadProtocol ?? 'http';
  if (defaultProtocol !== 'http' && defaultProtocol !== 'coap') throw new Error(`unknown download protocol ${String(defaultProtocol)}`);
  const secretOf = { getDeviceSecret: (pk: string, dn: string) => store.deviceSecret(pk, dn) };

  let worker = await registerWorker(store, opts.workerId ?? newWorkerId());
  let broker: BrokerHandle | undefined;
  let files: FileServerHandle | undefined;
  let coap: CoapFileServerHandle | undefined;
  let client: OtaCloudClient | undefined;
  const timers: NodeJS.Timeout[] = [];
  // Devices on the CoAP transport: informs and progress arrive here too (handlers below).
  // Device messages can arrive (from a broker's queue, a CoAP device) before this function has set up all
  // it needs to handle them: they wait for `ready`, and are acknowledged only once handled.
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const whenReady =
    <T>(handle: (d: DeviceRef, m: T) => Promise<void>) =>
    async (d: DeviceRef, m: T): Promise<void> => {
      await ready;
      await handle(d, m);
    };
  const coapNotices: CoapNoticeServer = createCoapNoticeServer({
    registry: secretOf,
    allowedSignMethods: opts.allowedSignMethods,
    onAuth: (d) => coapNotices.clearNotice(d),
    onInform: (d, m) => void whenReady(onInform)(d, m).catch(reportError),
    onProgress: (d, m) => void whenReady(onProgress)(d, m).catch(reportError),
    onInvalid: (path, e) => log(`ignored a malformed CoAP request on ${path}: ${e.message}`),
  });
  const cleanup = async (): Promise<void> => {
    for (const t of timers) clearInterval(t);
    await client?.close().catch(() => {});
    await files?.close();
    await coap?.close();
    await broker?.close();
    if (ownsStore) await store.close();
  };
  const reportError = (e: unknown): void => {
    log(`error: ${(e as Error).message}`);
    hub.emit({ type: 'error', error: e as Error });
  };

  // ------------------------------------------------------------ device messages

  const jobCache = new Map<string, OtaJob>();
  const jobOf = async (id: string): Promise<OtaJob | undefined> => {
    let j = jobCache.get(id);
    if (j === undefined) {
      j = await store.job(id);
      if (j === undefined) return undefined;
      if (jobCache.size >= 256) jobCache.delete(jobCache.keys().next().value!);
      jobCache.set(id, j);
    }
    return j;
  };

  async function onInform(d: DeviceRef, m: InformMessage): Promise<void> {
    coapNotices.clearNotice(d);
    const r = await recordInform(store, d, m.version);
    if (r.kind === 'unknown-device') return;
    verbose(`${key(d)}: informs version ${m.version}`);
    hub.emit({ type: 'inform', device: d, version: m.version });
    if (r.kind === 'queued') kick();
    else if (r.kind === 'succeeded') {
      const job = await jobOf(r.jobId);
      verbose(`${key(d)}: job ${r.jobId} done, running ${m.version}`);
      if (job !== undefined) hub.emit({ type: 'succeeded', device: d, job });
    }
  }

  async function onProgress(d: DeviceRef, m: ProgressMessage): Promise<void> {
    coapNotices.clearNotice(d); // the device has the notice
    const r = await recordProgress(store, d, m.step, m.desc);
    hub.emit({ type: 'progress', device: d, step: m.step, desc: m.desc });
    if (r.kind === 'progress' && r.state === 'failed') {
      log(`${key(d)}: job ${r.jobId} failed (${m.step}): ${m.desc}`);
      const job = await jobOf(r.jobId);
      if (job !== undefined) hub.emit({ type: 'failed', device: d, job, step: m.step, desc: m.desc });
    } else verbose(`${key(d)}: progress ${m.step} ${m.desc}`);
  }

  // ------------------------------------------------------------ servers and the broker

  try {
    if (!shared) {
      // Devices are refused until the cloud's own client has subscribed: a message published to no
      // subscriber would be acknowledged to the device and lost.
      if (opts.mqttTlsPort !== undefined && opts.tls === undefined) throw new Error('MQTT over TLS needs the TLS key and certificate (tls)');
      broker = await startBroker({
        registry: secretOf,
        service,
        host,
        port: opts.mqttPort ?? 0,
        allowedSignMethods: opts.allowedSignMethods,
        closedToDevices: true,
        ...(opts.mqttTlsPort === undefined ? {} : { tls: { port: opts.mqttTlsPort, key: opts.tls!.key, cert: opts.tls!.cert } }),
      });
      // One process owns an embedded broker: workers left by an earlier run of it are gone.
      await store.db.updateTable('workers').set({ state: 'retired' }).where('state', '=', 'live').where('id', '!=', worker.id).execute();
    }
    files = await startFileServer({
      host,
      port: opts.httpPort ?? 0,
      root: store.filesDir,
      secret: store.urlSecret,
      tls: opts.tls,
      requestLogLimit: 10_000,
      // A download URL is its device's, for its job, while that job is under way for it.
      authorizeBinding: ({ device, job }) => {
        const slash = device.indexOf('/');
        return slash > 0 && store.downloadAllowed(job, device.slice(0, slash), device.slice(slash + 1));
      },
      ...opts.fileServer,
    });
    coap = await startCoapFileServer({ host, port: opts.coapPort ?? 0, onRequest: (req, res) => coapNotices.handle(req, res) });
    client = await connectOtaCloud(opts.broker ?? broker!.url, service, {
      clientId: shared ? () => worker.clientId : `otadiff-cloud-${process.pid}-${randomBytes(3).toString('hex')}`,
      shared,
      onInform: whenReady(onInform),
      onProgress: whenReady(onProgress),
      onInvalid: (topic, e) => log(`ignored a malformed message on ${topic.slice(0, 200)}: ${e.message}`),
      onError: reportError,
      log,
    });
    broker?.openToDevices();
  } catch (e) {
    await cleanup();
    throw e;
  }
  const fileServer = files;
  const coapServer = coap;
  const cloudClient = client;
  const brokerUrl = opts.broker ?? broker!.url;
  const coapBase = `coap://${opts.publicHost ?? host}:${opts.publicCoapPort ?? coapServer.port}`;
  const publicBase =
    opts.publicUrl?.replace(/\/+$/, '') ?? (opts.publicHost === undefined ? fileServer.url : `${opts.tls === undefined ? 'http' : 'https'}://${opts.publicHost}:${fileServer.port}`);

  // ------------------------------------------------------------ pushes

  const signedUrl = (path: string, d: DeviceRef, jobId: string): string => {
    const url = fileServer.signUrl(path, Date.now() + ttl, { device: key(d), job: jobId });
    return publicBase === fileServer.url ? url : url.replace(fileServer.url, publicBase);
  };

  /** The CoAP path each device was last given: one package per device stays served. */
  const coapPaths = new Map<string, string>();
  /**
   * CoAP has no signed URLs here: each notice names the package under a fresh random path segment
   * (a capability nobody can guess), served until the device's next notice.
   */
  function coapUrl(d: DeviceRef, meta: PackageMeta): string {
    const old = coapPaths.get(key(d));
    if (old !== undefined) coapServer.removeFile(old);
    const path = `/pkg/${randomBytes(12).toString('hex')}/${meta.sha256.slice(0, 16)}.otad`;
    coapServer.setFile(path, store.packages.bytes(meta));
    coapPaths.set(key(d), path);
    return `${coapBase}${path}`;
  }

  async function push(c: Claim): Promise<void> {
    const d = { productKey: c.productKey, deviceName: c.deviceName };
    const job = await jobOf(c.jobId);
    if (job === undefined) return failPush(store, c, `job ${c.jobId} is gone`);
    let pkg;
    try {
      pkg = await store.packageMeta(c.productKey, c.fromVersion ?? undefined, job.version);
    } catch (e) {
      log(`${key(d)}: cannot make a package for ${job.version}: ${(e as Error).message}`);
      return failPush(store, c, `no package: ${(e as Error).message}`);
    }
    const { meta, isDiff } = pkg;
    if (pkg.diffError !== undefined) log(`${key(d)}: no diff ${c.fromVersion} -> ${job.version} (${pkg.diffError.message}); sending the full image`);
    const sign = signMethod === 'SHA256' ? meta.sha256 : meta.md5;
    const info: UpgradeInfo = {
      id: String(c.id),
      size: meta.size,
      version: job.version,
      url: (job.downloadProtocol ?? defaultProtocol) === 'coap' ? coapUrl(d, meta) : signedUrl(meta.path, d, c.jobId),
      signMethod,
      sign,
      isDiff: isDiff ? 1 : 0,
    };
    // The notice repeats the package header's split size (AliOS' splictSize).
    if (isDiff) info.splitSize = meta.splitSize;
    if (opts.signingKey !== undefined) info.digestsign = createDigestSign(signMethod, sign, opts.signingKey);
    // Both transports: a CoAP device polls for it, an MQTT device gets it published.
    coapNotices.setNotice(d, buildUpgradeMessage(info, { allowedProtocols: ['http:', 'https:', 'coap:'] }));
    try {
      await cloudClient.pushUpgrade(d, info);
    } catch (e) {
      log(`${key(d)}: the notice did not go out (${(e as Error).message}); queued again`);
      return unclaim(store, c);
    }
    await recordPush(store, c, { isDiff, packageBytes: meta.size });
    verbose(`${key(d)}: pushed ${job.version} as ${isDiff ? `a diff from ${c.fromVersion}` : 'the full image'} (${meta.size} bytes)`);
    hub.emit({ type: 'pushed', device: d, job, info, fromVersion: c.fromVersion ?? '', isDiff });
  }

  // The queue drains at pushRate: a token bucket refilled continuously, a batch at most a tenth of a second's worth.
  const burst = Math.max(1, Math.floor(pushRate / 10));
  let tokens = burst;
  let refilled = Date.now();
  let draining: Promise<void> | undefined;
  let again = false;
  let closed = false;
  const drain = async (): Promise<void> => {
    for (;;) {
      const now = Date.now();
      tokens = Math.min(burst, tokens + ((now - refilled) * pushRate) / 1000);
      refilled = now;
      if (tokens < 1) {
        await new Promise((r) => setTimeout(r, Math.ceil(((1 - tokens) * 1000) / pushRate)));
        if (closed) return;
        continue;
      }
      const n = Math.floor(tokens);
      const claims = await claimPushes(store, worker.id, n);
      tokens -= claims.length;
      await Promise.all(claims.map((c) => push(c).catch(reportError)));
      if (closed || claims.length < n) return;
    }
  };
  function kick(): void {
    if (closed) return;
    if (draining !== undefined) {
      again = true;
      return;
    }
    draining = drain()
      .catch(reportError)
      .finally(() => {
        draining = undefined;
        if (again && !closed) {
          again = false;
          kick();
        }
      });
  }
  /** Periodic tasks, one run at a time each; close() waits for the runs in progress. */
  const running = new Set<Promise<void>>();
  const every = (ms: number, fn: () => Promise<unknown>): void => {
    let busy = false;
    const t = setInterval(() => {
      if (busy || closed) return;
      busy = true;
      const p: Promise<void> = fn()
        .then(() => {}, reportError)
        .finally(() => {
          busy = false;
          running.delete(p);
        });
      running.add(p);
    }, ms);
    t.unref();
    timers.push(t);
  };
  if ((opts.pollMs ?? 1000) > 0) every(opts.pollMs ?? 1000, async () => kick());
  const noticeTimeout = opts.noticeTimeoutMs ?? 300_000;
  every(Math.max(50, Math.min(5000, noticeTimeout / 4)), async () => {
    const r = await expireNotices(store, noticeTimeout, opts.maxPushes ?? 3);
    if (r.requeued + r.failed > 0) {
      log(`${r.requeued} notice(s) unanswered for ${noticeTimeout / 1000} s queued again${r.failed > 0 ? `, ${r.failed} device(s) failed after ${opts.maxPushes ?? 3}` : ''}`);
      kick();
    }
  });

  // ------------------------------------------------------------ rollouts and revocations

  /** Cancel notices of cancelled rollouts' downloading devices, a batch at a time. */
  async function sendCancels(): Promise<void> {
    for (;;) {
      const claims = await claimCancels(store, 100);
      for (const c of claims) {
        const d = { productKey: c.productKey, deviceName: c.deviceName };
        const job = await jobOf(c.jobId);
        if (job === undefined) continue;
        const cancel = { id: String(c.id), version: job.version };
        coapNotices.setNotice(d, buildCancelMessage(cancel));
        try {
          await cloudClient.pushCancel(d, cancel);
        } catch (e) {
          log(`${key(d)}: the cancel notice did not go out (${(e as Error).message})`);
          continue;
        }
        verbose(`${key(d)}: told to stop its download of ${job.version} (rollout cancelled)`);
        hub.emit({ type: 'cancel-sent', device: d, version: job.version });
      }
      if (claims.length < 100) return;
    }
  }
  let ticking: Promise<void> | undefined;
  const tick = (): Promise<void> =>
    (ticking ??= (async () => {
      try {
        for (const r of await tickRollouts(store, await activeRollouts(store))) {
          for (const ev of r.events) {
            log(`rollout ${r.id}: ${ev}`);
            hub.emit({ type: 'rollout', id: r.id, event: ev });
          }
          if (r.queued > 0) kick();
        }
        await sendCancels();
      } finally {
        ticking = undefined;
      }
    })());
  if ((opts.rolloutTickMs ?? 1000) > 0) every(opts.rolloutTickMs ?? 1000, tick);

  const revoke = (d: DeviceRef): number => {
    const n = broker?.endDeviceSessions(d.productKey, d.deviceName) ?? 0;
    coapNotices.endSession(d);
    hub.emit({ type: 'revoked', device: d, sessions: n });
    return n;
  };
  // Removals and rotations made by any process (a CLI command, another worker's API) are rows here.
  let lastRevocation = Number((await store.db.selectFrom('revocations').select((eb) => eb.fn.max('id').as('m')).executeTakeFirst())?.m ?? 0);
  every(opts.revocationPollMs ?? 1000, async () => {
    const rows = await store.db.selectFrom('revocations').selectAll().where('id', '>', lastRevocation).orderBy('id').limit(1000).execute();
    for (const r of rows) {
      lastRevocation = Math.max(lastRevocation, Number(r.id));
      const n = revoke({ productKey: r.product_key, deviceName: r.device_name });
      log(`${r.product_key}/${r.device_name}: ${r.reason}; ${n} live session(s) ended${opts.broker === undefined ? '' : ' (an external broker ends its own)'}`);
    }
  });

  let api: ApiServerHandle | undefined;
  if (opts.apiPort !== undefined) {
    try {
      api = await startApiServer({
        store,
        host: opts.apiHost ?? host,
        port: opts.apiPort,
        log,
        onRevoked: (d) => void revoke(d),
        onRolloutChanged: () => void tick().catch(reportError),
        onJobCreated: () => kick(),
      });
    } catch (e) {
      closed = true;
      for (const t of timers) clearInterval(t);
      await cleanup();
      throw e;
    }
  }

  // ------------------------------------------------------------ workers

  every(opts.heartbeatMs ?? 1000, async () => {
    if (await heartbeat(store, worker.id)) return;
    // Another worker took this one for dead (it stalled) and took its broker session over.
    const old = worker.id;
    worker = await registerWorker(store);
    log(`worker ${old} was taken over by another worker while it stalled; going on as ${worker.id}`);
  });
  if (shared) {
    const stale = opts.staleWorkerMs ?? 5000;
    every(Math.max(200, stale / 2), async () => {
      for (const dead of await deadWorkers(store, worker.id, stale)) {
        if (!(await claimDead(store, worker.id, dead.id))) continue;
        log(`worker ${dead.id} is silent for ${stale / 1000} s: taking over its broker session`);
        const n = await drainSession(brokerUrl, service, workerClientId(dead.id), { onInform, onProgress }, { onError: reportError, onInvalid: (t, e) => log(`ignored a malformed message on ${t.slice(0, 200)}: ${e.message}`) });
        await setWorkerState(store, dead.id, 'reaped');
        log(`worker ${dead.id} taken over: ${n} message(s) it had not handled`);
        hub.emit({ type: 'takeover', worker: dead.id, messages: n });
        kick();
      }
    });
  }
  markReady();
  kick();

  let closing: Promise<void> | undefined;
  return {
    store,
    brokerUrl,
    brokerTlsUrl: broker?.tlsUrl,
    broker,
    files: fileServer,
    coap: coapServer,
    get workerId() {
      return worker.id;
    },
    api,
    tick,
    revoke,
    async createJob(o) {
      const job = await store.createJob(o);
      log(`job ${job.id}: ${job.productKey} -> ${job.version} for ${job.devices === 'all' ? 'all devices' : job.devices.join(', ')}`);
      kick();
      return job;
    },
    status: () => store.status(),
    on: (l) => hub.on(l),
    waitFor: (pred, timeoutMs) => hub.waitFor(pred, timeoutMs, 'cloud event'),
    close() {
      closing ??= (async () => {
        closed = true;
        for (const t of timers) clearInterval(t);
        await api?.close();
        await ticking?.catch(() => {});
        await draining;
        await Promise.allSettled([...running]);
        await cloudClient.close().catch(() => {});
        await setWorkerState(store, worker.id, 'retired').catch(() => {});
        client = undefined;
        await cleanup();
      })();
      return closing;
    },
  };
}
