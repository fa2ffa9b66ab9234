// `npm run bench:fleet`: one rollout of a diff to a simulated fleet through a real cloud
// (fleet/run-fleet.ts), and what one status write costs at 100 and 10,000 devices
// (fleet/status-cost.ts). Writes bench/results/fleet.md (every scenario run so far, kept in
// fleet.json) with a plot of devices updated over time per scenario; --json prints the result.
//
//   --devices N          fleet size (default 10000)
//   --workers K          cloud processes (default 1; more need --db and an external broker)
//   --db URL             PostgreSQL (default: SQLite in the data directory)
//   --broker B           embedded | mosquitto | mqtt://… (default: embedded with 1 worker, mosquitto with more)
//   --restore-sample S   devices that run the real OTA service and restore on simulated flash (default 20)
//   --push-rate R        notices a second per worker (default 250)
//   --kill-at F          with several workers: SIGKILL one once this share is updated (default 0.3; 0 = never)
//   --crash-at F         with one worker: SIGKILL it once this share is updated, then start it again
//   --device-procs P     processes holding the simulated devices (default 2)
//   --no-status-cost     skip the status-write measurement
//   --json               print one JSON object (the fields of FleetResult, and statusWriteCost)
//   --report-only        write fleet.md again from fleet.json, run nothing

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { espDir } from './corpus.js';
import { table } from './format.js';
import { ensureDir, resultsDir } from './paths.js';
import { runFleet, type FleetOptions, type FleetResult } from './fleet/run-fleet.js';
import { statusWriteCost, type WriteCost } from './fleet/status-cost.js';
import { renderLineChart } from './svg.js';

interface Args {
  devices: number;
  workers: number;
  db?: string;
  broker?: string;
  restoreSample: number;
  pushRate: number;
  killAt?: number;
  crashAt?: number;
  deviceProcs: number;
  statusCost: boolean;
  json: boolean;
  reportOnly: boolean;
}

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { devices: 10_000, workers: 1, restoreSample: 20, pushRate: 250, deviceProcs: 2, statusCost: true, json: false, reportOnly: false };
  const num = (name: string, v: string | undefined, min: number, max: number, int = true): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) fail(`${name} must be ${int ? 'an integer' : 'a number'} from ${min} to ${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case '--devices': a.devices = num(k, v, 1, 100_000); i++; break;
      case '--workers': a.workers = num(k, v, 1, 8); i++; break;
      case '--db': if (v === undefined || !/^postgres(ql)?:\/\//.test(v)) fail('--db must be a postgres:// URL'); a.db = v; i++; break;
      case '--broker': if (v === undefined) fail('--broker needs a value'); a.broker = v; i++; break;
      case '--restore-sample': a.restoreSample = num(k, v, 0, 200); i++; break;
      case '--push-rate': a.pushRate = num(k, v, 1, 100_000, false); i++; break;
      case '--kill-at': a.killAt = num(k, v, 0, 1, false); i++; break;
      case '--crash-at': a.crashAt = num(k, v, 0, 1, false); i++; break;
      case '--device-procs': a.deviceProcs = num(k, v, 1, 16); i++; break;
      case '--no-status-cost': a.statusCost = false; break;
      case '--json': a.json = true; break;
      case '--report-only': a.reportOnly = true; break;
      default: fail(`unknown option ${k}`);
    }
  }
  if (a.workers > 1 && a.db === undefined) fail('--workers above 1 needs --db postgres://… (the workers share it)');
  return a;
}

interface Stored {
  scenario: string;
  date: string;
  command: string;
  result: FleetResult;
  statusWriteCost?: WriteCost[];
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

function scenarioName(r: FleetResult): string {
  const kill = r.killed === null ? '' : r.killed.restarted ? ', cloud SIGKILLed and restarted' : ', one worker SIGKILLed';
  return `${r.devices} devices, ${r.workers} worker(s), ${r.engine}, ${r.broker.startsWith('embedded') ? 'embedded broker' : r.broker}${kill}`;
}

const mib = (b: number | null): string => (b === null ? '-' : `${(b / 1048576).toFixed(0)} MiB`);

function report(all: Stored[]): string {
  const out: string[] = ['# Fleet bench', ''];
  out.push(
    'One rollout of a diff to a simulated fleet through a real cloud (`npm run bench:fleet`, `bench/src/fleet.ts`). Every device is a real MQTT connection with its own HMAC sign-in; it reports its version, fetches the package head and then the rest over HTTP with Range, checks the SHA-256, reports progress and its new version (the restore is simulated but for the restore sample, which runs the real OTA service and restore on simulated flash). `updated` counts devices that run the new version, `lost` those the cloud does not show as succeeded or failed at the end, `duplicatePushes` notices a device got beyond its first (the number of notices the cloud sent, under each scenario, also counts a notice sent again because the first never arrived). Peak RSS is each process\'s VmHWM; with the embedded broker it is part of the cloud\'s.',
    '',
  );
  out.push(
    table(
      ['scenario', 'updated', 'failed', 'lost', 'duplicate pushes', 'rollout s', 'msgs/s', 'cloud peak RSS', 'broker peak RSS', 'push rate', 'restore sample'],
      all.map((s) => {
        const r = s.result;
        return [s.scenario, `${r.updated}/${r.devices}`, String(r.failed), String(r.lost), String(r.duplicatePushes), r.seconds.toFixed(1), r.messagesPerSecond.toFixed(0), mib(r.cloudPeakRssBytes), mib(r.brokerPeakRssBytes), `${r.pushRate}/s/worker`, `${r.restoreSample.updated}/${r.restoreSample.devices}`];
      }),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  for (const s of all) {
    const r = s.result;
    out.push('', `## ${s.scenario}`, '', `${s.date}: \`${s.command}\``, '');
    out.push(
      `Registered in ${r.registerSeconds.toFixed(1)} s, connected in ${r.connectSeconds.toFixed(1)} s; package ${r.packageBytes ?? '-'} bytes. The cloud's database at the end: ${Object.entries(r.cloud.states).map(([k, v]) => `${v} ${k}`).join(', ')}; ${r.cloud.notices} notices sent, ${r.cloud.devicesPushedTwice} device(s) sent more than one. ${r.killed === null ? '' : `${r.killed.worker} was SIGKILLed at ${r.killed.atSeconds.toFixed(1)} s${r.killed.restarted ? ' and started again' : ''}.`}`,
    );
    out.push('', `![devices updated over time](${`fleet-${slug(s.scenario)}.svg`})`);
    if (s.statusWriteCost !== undefined) {
      out.push('', 'Status write cost (SQLite, as `serve` runs it; same run):', '');
      const base = s.statusWriteCost[0];
      out.push(
        table(
          ['devices in the database', 'progress update (µs)', 'inform (µs)', 'progress vs first row', 'inform vs first row'],
          s.statusWriteCost.map((c) => [String(c.devices), c.progressMicros.toFixed(1), c.informMicros.toFixed(1), (c.progressMicros / base.progressMicros).toFixed(2), (c.informMicros / base.informMicros).toFixed(2)]),
          ['r', 'r', 'r', 'r', 'r'],
        ),
      );
    }
  }
  return `${out.join('\n')}\n`;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const file = join(ensureDir(resultsDir), 'fleet.json');
  if (a.reportOnly) {
    writeFileSync(join(resultsDir, 'fleet.md'), report(JSON.parse(readFileSync(file, 'utf8')) as Stored[]));
    return;
  }
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const old = new Uint8Array(readFileSync(join(espDir, 'at-v3.0.4.bin')));
  const neu = new Uint8Array(readFileSync(join(espDir, 'at-v3.0.5.bin')));
  const opts: FleetOptions = {
    devices: a.devices,
    workers: a.workers,
    db: a.db,
    broker: a.broker,
    restoreSample: a.restoreSample,
    pushRate: a.pushRate,
    killAt: a.killAt === 0 ? 2 : a.killAt,
    crashAt: a.crashAt,
    deviceProcs: a.deviceProcs,
    fromVersion: '3.0.4',
    toVersion: '3.0.5',
    old,
    neu,
    log,
  };
  const result = await runFleet(opts);
  let cost: WriteCost[] | undefined;
  if (a.statusCost) {
    log('status write cost at 100 and 10,000 devices …');
    cost = await statusWriteCost([100, 10_000], 3000, old);
  }
  const all: Stored[] = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Stored[]) : [];
  const scenario = scenarioName(result);
  const stored: Stored = {
    scenario,
    date: new Date().toISOString().slice(0, 10),
    command: ['npm run bench:fleet', ...(process.argv.length > 2 ? ['--', process.argv.slice(2).join(' ').replace(/postgres(ql)?:\/\/[^ ]*/g, 'postgres://…')] : [])].join(' '),
    result: { ...result, workerLogTail: [] },
    ...(cost === undefined ? {} : { statusWriteCost: cost }),
  };
  const next = [...all.filter((s) => s.scenario !== scenario), stored];
  writeFileSync(file, `${JSON.stringify(next, null, 1)}\n`);
  const markers = result.killed === null ? [] : [{ x: result.killed.atSeconds, label: result.killed.restarted ? 'cloud SIGKILL, restart' : `${result.killed.worker} SIGKILL` }];
  writeFileSync(
    join(resultsDir, `fleet-${slug(scenario)}.svg`),
    renderLineChart({
      title: `${scenario}: devices over time`,
      xLabel: 'seconds since the rollout started',
      yLabel: 'devices',
      series: [
        { label: 'notified', color: '#9ab', points: result.timeline.map(([t, , told]) => [t, told]) },
        { label: 'updated', color: '#1a7f37', points: result.timeline.map(([t, up]) => [t, up]) },
      ],
      markers,
    }),
  );
  writeFileSync(join(resultsDir, 'fleet.md'), report(next));
  if (a.json) process.stdout.write(`${JSON.stringify({ ...result, statusWriteCost: cost })}\n`);
  else {
    log(`${scenario}: ${result.updated}/${result.devices} updated, ${result.failed} failed, ${result.lost} lost, ${result.duplicatePushes} duplicate pushes, ${result.seconds.toFixed(1)} s, cloud peak RSS ${mib(result.cloudPeakRssBytes)}`);
    if (cost) for (const c of cost) log(`status write at ${c.devices} devices: progress ${c.progressMicros.toFixed(1)} µs, inform ${c.informMicros.toFixed(1)} µs`);
    log(`wrote bench/results/fleet.md`);
  }
}

main().catch((e: unknown) => fail((e as Error).message));
