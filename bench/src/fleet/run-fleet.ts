// The fleet load bench: a real cloud (one embedded `otadiff serve`, or K workers on PostgreSQL and
// mosquitto behind a small load balancer for their file servers), N simulated devices in a few child
// processes (sim-devices.ts), one rollout of a diff: a plain job to every device, or a staged
// rollout (waves, a failure limit …) made with `otadiff serve rollout create`, with a share of the
// devices failing their update (fail-choice.ts, flash-fault.ts). Counts what the devices saw
// (notices, updates, failures) and what the cloud recorded, samples the workers' and the broker's
// peak RSS, and can SIGKILL a worker (or the only cloud, then restart it) in the middle of it.

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudStore, createDeviceFlashDir, type RolloutView } from '@otadiff/ota-core';
import { benchDir, cliBin } from '../paths.js';
import { startBalancer, type Balancer } from './balancer.js';
import { failingDevices } from './fail-choice.js';
import { childEnv, createRolloutWithCli, readRollout, type RolloutArgs } from './rollout-cli.js';
import { freePort, startBenchMosquitto, type BenchMosquitto } from './mosquitto.js';
import type { ChildMessage, SimConfig, SimDeviceSpec, SimEventKind } from './sim-devices.js';

export const FLEET_PK = 'a1FleetBench';

export interface FleetOptions {
  devices: number;
  /** Cloud processes (more than 1 needs `db` and an external broker). */
  workers?: number;
  /** postgres://… (default: SQLite in the data directory). */
  db?: string;
  /** 'embedded' (default with 1 worker), 'mosquitto' (started here), or a broker URL. */
  broker?: string;
  restoreSample?: number;
  pushRate?: number;
  /** Child processes holding the simulated devices (default 2). */
  deviceProcs?: number;
  connectPerSecond?: number;
  /** SIGKILL worker 1 once this share of the fleet is updated (default with 2+ workers: 0.3; never with 1). */
  killAt?: number;
  /** With one worker: SIGKILL it once this share is updated and start it again (the power cut of the cloud). */
  crashAt?: number;
  noticeTimeoutSec?: number;
  /** The bench gives up waiting for the devices (or the rollout) after this (default 600 s). */
  timeoutSec?: number;
  /** Share of the fleet (0..1) whose update fails its verify (a flash fault), chosen by failSeed (default 1). */
  failRate?: number;
  failSeed?: number;
  /** A staged rollout instead of one plain job, with this policy (as `serve rollout create` takes it). */
  rollout?: RolloutArgs;
  old: Uint8Array;
  neu: Uint8Array;
  fromVersion?: string;
  toVersion?: string;
  log?: (line: string) => void;
}

export interface FleetResult {
  devices: number;
  updated: number;
  failed: number;
  lost: number;
  /** The lost devices as the cloud's database has them (at most 20), to say why. */
  lostDevices: Array<{ deviceName: string; state: string | null; pushes: number | null }>;
  duplicatePushes: number;
  seconds: number;
  messagesPerSecond: number;
  cloudPeakRssBytes: number;
  brokerPeakRssBytes: number | null;
  workers: number;
  engine: 'sqlite' | 'postgres';
  broker: string;
  pushRate: number;
  restoreSample: { devices: number; updated: number };
  /** What the cloud's database says at the end. */
  cloud: {
    succeeded: number;
    failed: number;
    states: Record<string, number>;
    notices: number;
    devicesPushedTwice: number;
    /** The failed devices by the progress step they reported (-3: verify failed; older results: absent). */
    failedSteps?: Record<string, number>;
  };
  notices: number;
  connectSeconds: number;
  registerSeconds: number;
  packageBytes: number | null;
  killed: { atSeconds: number; worker: string; restarted: boolean } | null;
  /** [seconds, updated, notified, failed] as the devices saw it (older results: no failed). */
  timeline: Array<[number, number, number, number?]>;
  workerLogTail: string[];
  /** The share of the fleet set to fail, and how many devices that is. */
  failRate: number;
  failing: number;
  /** Devices that ever received a notice, counted at the devices; `updated + failed` of them finished. */
  notified: number;
  notifiedFraction: number;
  /** The staged rollout, when there was one (null: a plain job). */
  rollout: RolloutOutcome | null;
}

export interface RolloutOutcome {
  id: string;
  /** At the end: completed, paused (by itself: a plain bench never pauses one), cancelled, or still running at the deadline. */
  state: RolloutView['state'];
  reason: string | null;
  /** The wave it reached, 1-based (as `serve rollout show` prints it), of `waves.length`. */
  wave: number;
  policy: RolloutView['policyText'];
  waves: Array<{ wave: number; target: number; devices: number; succeeded: number; failed: number; skipped: number; cancelled: number; inProgress: number; state: string }>;
  /** Seconds after the bench began creating it that it saw it leave `running` (null: it never did). */
  endedAtSeconds: number | null;
  /** Devices the cloud sent a notice to (its view; `notified` is the devices'). */
  cloudNotified: number;
}

/** A rollout's device rows not finished yet (held ones wait for a resume: not in flight). */
const IN_FLIGHT = ['waiting', 'queued', 'notified', 'downloading', 'downloaded', 'cancelling'] as const;

/** The device processes run the built bench (a test runs this module from its TypeScript source). */
const simDevicesJs = join(benchDir, 'dist', 'fleet', 'sim-devices.js');

interface Worker {
  id: string;
  args: string[];
  child: ChildProcess;
  exited: Promise<void>;
  peakRss: number;
  tail: string[];
}

function vmHwm(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function startWorker(id: string, args: string[], log: (l: string) => void): Promise<Worker> {
  const child = spawn(process.execPath, [cliBin, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  const w: Worker = { id, args, child, peakRss: 0, tail: [], exited: new Promise((r) => child.once('exit', () => r())) };
  let buf = '';
  let ready: (() => void) | undefined;
  const onData = (d: Buffer): void => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      w.tail.push(`${id}: ${line}`);
      if (w.tail.length > 40) w.tail.shift();
      if (/error|lost the broker|back at the broker|taken over|taking over|unanswered| rollout r[0-9a-z]+: /.test(line)) log(`${id}: ${line}`);
      if (line.includes('Ctrl-C stops')) ready?.();
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return new Promise((resolve, reject) => {
    ready = () => resolve(w);
    void w.exited.then(() => reject(new Error(`worker ${id} exited before it was ready:\n${w.tail.join('\n')}`)));
  });
}

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  const log = o.log ?? (() => {});
  const n = o.devices;
  const k = o.workers ?? 1;
  const from = o.fromVersion ?? '1.0.0';
  const to = o.toVersion ?? '2.0.0';
  const pushRate = o.pushRate ?? 200;
  const brokerKind = o.broker ?? (k > 1 ? 'mosquitto' : 'embedded');
  if (k > 1 && brokerKind === 'embedded') throw new Error('several workers need an external broker (--broker mosquitto or a URL)');
  if (k > 1 && o.db === undefined) throw new Error('several workers need a shared PostgreSQL database (--db postgres://…)');
  const work = await mkdtemp(join(tmpdir(), 'otadiff-fleet-'));
  const dataDir = join(work, 'data');
  const children: ChildProcess[] = [];
  const workers: Worker[] = [];
  let mosquitto: BenchMosquitto | undefined;
  let balancer: Balancer | undefined;
  let store: CloudStore | undefined;
  try {
    // ---- the cloud's data: product, firmware, N devices (one transaction)
    const tr = Date.now();
    store = await CloudStore.open(dataDir, { db: o.db, durability: 'fast' });
    await store.addProduct(FLEET_PK, { mode: 'inplace', splitSize: 64 * 1024 });
    await store.addFirmware(FLEET_PK, from, o.old);
    await store.addFirmware(FLEET_PK, to, o.neu);
    const specs: SimDeviceSpec[] = (await store.addDevices(FLEET_PK, Array.from({ length: n }, (_, i) => ({ deviceName: `fleet-${String(i).padStart(6, '0')}` })))).map((d) => ({
      name: d.deviceName,
      secret: d.deviceSecret,
    }));
    const failRate = o.failRate ?? 0;
    const fails = failingDevices(n, failRate, o.failSeed ?? 1);
    for (const i of fails) specs[i].fails = true;
    const sample = Math.min(o.restoreSample ?? 20, n);
    for (let i = 0; i < sample; i++) {
      // Spread over the fleet, so the sample sees the whole rollout.
      const j = Math.floor((i * n) / sample);
      specs[j].flashDir = join(work, 'flash', specs[j].name);
      createDeviceFlashDir(specs[j].flashDir!, { image: o.old, version: from, splitSize: 64 * 1024 });
    }
    const registerSeconds = (Date.now() - tr) / 1000;
    log(`registered ${n} devices (${sample} with the real restore${fails.size > 0 ? `, ${fails.size} set to fail their update` : ''}) in ${registerSeconds.toFixed(1)} s; ${o.db === undefined ? 'SQLite' : 'PostgreSQL'}`);

    // ---- broker and workers
    let brokerUrl: string;
    const mqttPort = await freePort();
    if (brokerKind === 'mosquitto') {
      mosquitto = await startBenchMosquitto(work);
      brokerUrl = mosquitto.url;
    } else if (brokerKind === 'embedded') brokerUrl = `mqtt://127.0.0.1:${mqttPort}`;
    else brokerUrl = brokerKind;
    const httpPorts = await Promise.all(Array.from({ length: k }, () => freePort()));
    if (k > 1) balancer = await startBalancer(httpPorts.map((p) => ({ host: '127.0.0.1', port: p })));
    const argsOf = (i: number): string[] => [
      '--data', dataDir,
      ...(o.db === undefined ? [] : ['--db', o.db]),
      ...(brokerKind === 'embedded' ? ['--port', String(mqttPort)] : ['--broker', brokerUrl]),
      '--http-port', String(httpPorts[i]),
      '--coap-port', '0',
      '--push-rate', String(pushRate),
      '--notice-timeout', String(o.noticeTimeoutSec ?? 60),
      '--worker-id', `fleet-w${i + 1}`,
      '--quiet',
      ...(balancer === undefined ? [] : ['--public-url', balancer.url]),
    ];
    for (let i = 0; i < k; i++) workers.push(await startWorker(`fleet-w${i + 1}`, argsOf(i), log));
    log(`${k} cloud worker(s) up; broker ${brokerKind === 'embedded' ? 'embedded in the worker' : brokerUrl}`);

    // ---- devices
    const procs = Math.max(1, Math.min(o.deviceProcs ?? 2, n));
    const per = Math.ceil(n / procs);
    const notices = new Uint16Array(n);
    const updatedAt = new Float64Array(n);
    const failedAt = new Float64Array(n);
    let published = 0;
    let t0 = 0;
    let readyCount = 0;
    let failedToConnect = 0;
    const readyAll = new Promise<void>((resolveAll, rejectAll) => {
      let left = procs;
      for (let p = 0; p < procs; p++) {
        const child = fork(simDevicesJs, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        child.on('message', (m: ChildMessage) => {
          if (m.type === 'events') {
            if (t0 > 0) published += m.published;
            for (const [kind, i, t] of m.events as Array<[SimEventKind, number, number]>) {
              if (kind === 'notice') notices[i]++;
              else if (kind === 'updated' && updatedAt[i] === 0) updatedAt[i] = t;
              else if (kind === 'failed' && failedAt[i] === 0 && updatedAt[i] === 0) failedAt[i] = t;
            }
          } else if (m.type === 'ready') {
            readyCount += m.n;
            failedToConnect += m.failedToConnect;
            if (--left === 0) resolveAll();
          } else if (m.type === 'error') log(`device: ${m.message}`);
        });
        child.once('exit', (code) => {
          if (left > 0) rejectAll(new Error(`a device process exited (${code}) before its devices were up`));
        });
        const cfg: SimConfig = {
          brokerUrl,
          productKey: FLEET_PK,
          fromVersion: from,
          toVersion: to,
          devices: specs.slice(p * per, (p + 1) * per),
          base: p * per,
          connectPerSecond: (o.connectPerSecond ?? 800) / procs,
        };
        child.send({ type: 'start', config: cfg });
      }
    });
    const tc = Date.now();
    await readyAll;
    const connectSeconds = (Date.now() - tc) / 1000;
    log(`${readyCount} devices connected and reported ${from} in ${connectSeconds.toFixed(1)} s${failedToConnect ? ` (${failedToConnect} could not connect)` : ''}`);

    // ---- the rollout: one plain job, or a staged rollout as an operator makes it
    let jobId: string;
    let rolloutId: string | undefined;
    t0 = Date.now();
    if (o.rollout !== undefined) {
      const r = await createRolloutWithCli({ dataDir, db: o.db, productKey: FLEET_PK, version: to, policy: o.rollout });
      jobId = r.jobId;
      rolloutId = r.id;
      log(`rollout ${r.id}: waves ${r.policyText.waves}, success threshold ${r.policyText.successThreshold}, max failures ${r.policyText.maxFailures} a wave, timeout ${r.policyText.timeout}, retries ${r.policyText.retries}; wave 1 of ${r.waves.length} released (${r.waves[0]?.devices ?? 0} devices)`);
    } else jobId = (await store.createJob({ productKey: FLEET_PK, version: to })).id;
    let view: RolloutView | undefined;
    let endedAt: number | null = null;
    const timeline: Array<[number, number, number, number]> = [];
    let killed: FleetResult['killed'] = null;
    const killAt = k > 1 ? (o.killAt ?? 0.3) : undefined;
    const deadline = t0 + (o.timeoutSec ?? 600) * 1000;
    let last = -1;
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      let up = 0;
      let down = 0;
      let told = 0;
      for (let i = 0; i < n; i++) {
        if (updatedAt[i] > 0) up++;
        else if (failedAt[i] > 0) down++;
        if (notices[i] > 0) told++;
      }
      const t = (Date.now() - t0) / 1000;
      timeline.push([t, up, told, down]);
      for (const w of workers) w.peakRss = Math.max(w.peakRss, vmHwm(w.child.pid));
      if (mosquitto) mosquitto.peakRss = Math.max(mosquitto.peakRss, vmHwm(mosquitto.pid));
      if (Math.floor(t / 5) !== last) {
        last = Math.floor(t / 5);
        log(`${t.toFixed(1)} s: ${told} notified, ${up} updated, ${down} failed`);
      }
      if (killed === null && killAt !== undefined && up >= killAt * n) {
        const w = workers[0];
        w.child.kill('SIGKILL');
        await w.exited;
        killed = { atSeconds: t, worker: w.id, restarted: false };
        log(`SIGKILL ${w.id} at ${t.toFixed(1)} s (${up} updated)`);
      }
      if (killed === null && k === 1 && o.crashAt !== undefined && up >= o.crashAt * n) {
        const w = workers[0];
        w.child.kill('SIGKILL');
        await w.exited;
        killed = { atSeconds: t, worker: w.id, restarted: true };
        log(`SIGKILL the cloud at ${t.toFixed(1)} s (${up} updated); starting it again`);
        const again = await startWorker(w.id, w.args, log);
        again.peakRss = w.peakRss;
        workers[0] = again;
      }
      if (Date.now() > deadline) break;
      if (rolloutId === undefined) {
        if (up + down >= n) break;
        continue;
      }
      // A rollout ends completed or paused; then the devices already told finish (a pause sends
      // nothing new but lets them go on): none in flight in the cloud's view, every device told
      // updated or failed at the devices; bounded by 30 s.
      if (endedAt === null && timeline.length % 4 !== 1) continue;
      view = await readRollout(store, rolloutId);
      if (endedAt === null && view.state !== 'running') {
        endedAt = t;
        log(`${t.toFixed(1)} s: rollout ${view.state} in wave ${view.wave + 1} of ${view.waves.length}${view.reason ? `: ${view.reason}` : ''}`);
      }
      const inFlight = IN_FLIGHT.reduce((s, k) => s + (view!.counts[k] ?? 0), 0);
      if (endedAt !== null && ((inFlight === 0 && up + down >= told) || t - endedAt > 30)) break;
    }
    if (rolloutId !== undefined) view = await readRollout(store, rolloutId);
    const lastUpdate = Math.max(...Array.from(updatedAt).filter((x) => x > 0), t0);
    const seconds = (lastUpdate - t0) / 1000;
    // Let the last informs land before reading the cloud's view: a device whose last report died with a
    // killed cloud reports again once its link is back (its reconnects back off up to 5 s, and the cloud
    // takes a moment to start again), so wait up to 30 s for the view to settle.
    const counts = async (): Promise<Record<string, number>> => store!.jobCounts(jobId) as Promise<Record<string, number>>;
    const notified = notices.reduce((s, x) => s + (x > 0 ? 1 : 0), 0);
    // The devices that took part: all of them for a plain job, those told for a rollout.
    const taking = rolloutId === undefined ? n : notified;
    let states = await counts();
    for (let i = 0; i < 120 && (states.succeeded ?? 0) + (states.failed ?? 0) < taking; i++) {
      await new Promise((r) => setTimeout(r, 250));
      states = await counts();
    }
    const rows = await store.db.selectFrom('device_jobs').select(['device_name', 'state', 'pushes', 'step']).where('job_id', '=', jobId).execute();
    const rowOf = new Map(rows.map((r) => [r.device_name, r]));
    const lostDevices: FleetResult['lostDevices'] = [];
    const succeededInCloud = new Set(rows.filter((r) => r.state === 'succeeded').map((r) => r.device_name));
    let updated = 0;
    let failed = 0;
    let recorded = 0;
    let duplicatePushes = 0;
    let noticeCount = 0;
    let sampleUpdated = 0;
    for (let i = 0; i < n; i++) {
      noticeCount += notices[i];
      duplicatePushes += Math.max(0, notices[i] - 1);
      if (updatedAt[i] > 0) {
        updated++;
        if (succeededInCloud.has(specs[i].name)) recorded++;
        else if (lostDevices.length < 20) lostDevices.push({ deviceName: specs[i].name, state: rowOf.get(specs[i].name)?.state ?? null, pushes: rowOf.get(specs[i].name)?.pushes ?? null });
        if (specs[i].flashDir !== undefined) sampleUpdated++;
      } else if (failedAt[i] > 0) failed++;
    }
    const pkg = await store.db.selectFrom('packages').select('size').where('product_key', '=', FLEET_PK).executeTakeFirst();
    return {
      devices: n,
      updated,
      failed,
      lost: taking - recorded - failed,
      lostDevices,
      duplicatePushes,
      seconds,
      messagesPerSecond: seconds > 0 ? published / seconds : 0,
      cloudPeakRssBytes: Math.max(...workers.map((w) => w.peakRss)),
      brokerPeakRssBytes: mosquitto ? mosquitto.peakRss : null,
      workers: k,
      engine: o.db === undefined ? 'sqlite' : 'postgres',
      broker: brokerKind === 'embedded' ? 'embedded (aedes, in the cloud process)' : brokerKind === 'mosquitto' ? 'mosquitto' : brokerKind,
      pushRate,
      restoreSample: { devices: sample, updated: sampleUpdated },
      cloud: {
        succeeded: succeededInCloud.size,
        failed: rows.filter((r) => r.state === 'failed').length,
        states,
        notices: rows.reduce((s, r) => s + Number(r.pushes), 0),
        devicesPushedTwice: rows.filter((r) => Number(r.pushes) > 1).length,
        failedSteps: rows.filter((r) => r.state === 'failed').reduce<Record<string, number>>((m, r) => ((m[String(r.step)] = (m[String(r.step)] ?? 0) + 1), m), {}),
      },
      notices: noticeCount,
      connectSeconds,
      registerSeconds,
      packageBytes: pkg === undefined ? null : Number(pkg.size),
      killed,
      timeline,
      workerLogTail: workers.flatMap((w) => w.tail.slice(-10)),
      failRate,
      failing: fails.size,
      notified,
      notifiedFraction: n > 0 ? notified / n : 0,
      rollout:
        view === undefined
          ? null
          : {
              id: view.id,
              state: view.state,
              reason: view.reason,
              wave: view.wave + 1,
              policy: view.policyText,
              waves: view.waves.map((w) => ({ wave: w.index + 1, target: w.target, devices: w.devices, succeeded: w.succeeded, failed: w.failed, skipped: w.skipped, cancelled: w.cancelled, inProgress: w.inProgress, state: w.state })),
              endedAtSeconds: endedAt,
              cloudNotified: rows.filter((r) => Number(r.pushes) > 0).length,
            },
    };
  } finally {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || !c.connected) return resolve();
            const t = setTimeout(() => (c.kill('SIGKILL'), resolve()), 15_000);
            c.once('exit', () => (clearTimeout(t), resolve()));
            c.send({ type: 'stop' });
          }),
      ),
    );
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    await Promise.race([Promise.all(workers.map((w) => w.exited)), new Promise((r) => setTimeout(r, 15_000))]);
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await mosquitto?.close();
    await balancer?.close();
    await store?.close();
    await rm(work, { recursive: true, force: true });
  }
}
