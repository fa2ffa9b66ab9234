// `npm run bench:fleet`: one rollout of a diff to a simulated fleet through a real cloud
// (fleet/run-fleet.ts), and what one status write costs at 100 and 10,000 devices
// (fleet/status-cost.ts). Writes bench/results/fleet.md (every scenario run so far, kept in
// fleet.json) with a plot of devices updated over time per scenario; --json prints the result.
// With --waves (or any rollout option) it is a staged rollout made with `otadiff serve rollout
// create`, and with --fail-rate a share of the devices fails its update: the bench waits until the
// rollout completes or pauses itself, and reports how far it got and how many devices it told.
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
//   --fail-rate F        share of the devices whose update fails its verify: 0..1 or 20% (default 0)
//   --fail-seed N        which devices fail (a seeded choice; default 1)
//   --waves W            a staged rollout: cumulative waves, 1%,10%,100% or 10,100,1000
//   --success-threshold P, --max-failures N, --timeout T, --retries N
//                        the rollout's policy, as `otadiff serve rollout create` takes them
//                        (any of them makes the run a rollout; --waves defaults to 100%)
//   --deadline S         give up waiting after S seconds (default 600); a rollout still running
//                        then is an error (exit 1, nothing recorded); completed or paused is a result
//   --no-status-cost     skip the status-write measurement
//   --json               print one JSON object (the fields of FleetResult, and statusWriteCost)
//   --report-only        write fleet.md again from fleet.json, run nothing

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { espDir } from './corpus.js';
import { table } from './format.js';
import { ensureDir, resultsDir } from './paths.js';
import { parsePolicy } from '@otadiff/ota-core';
import { parseFailRate } from './fleet/fail-choice.js';
import type { RolloutArgs } from './fleet/rollout-cli.js';
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
  failRate: number;
  failSeed: number;
  rollout?: RolloutArgs;
  deadline: number;
  statusCost: boolean;
  json: boolean;
  reportOnly: boolean;
}

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { devices: 10_000, workers: 1, restoreSample: 20, pushRate: 250, deviceProcs: 2, failRate: 0, failSeed: 1, deadline: 600, statusCost: true, json: false, reportOnly: false };
  const policy: RolloutArgs = {};
  const text = (name: string, v: string | undefined): string => {
    if (v === undefined || v.startsWith('--')) fail(`${name} needs a value`);
    return v;
  };
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
      case '--fail-rate':
        try {
          a.failRate = parseFailRate(text(k, v));
        } catch (e) {
          fail((e as Error).message);
        }
        i++;
        break;
      case '--fail-seed': a.failSeed = num(k, v, 0, 2 ** 32 - 1); i++; break;
      case '--deadline': a.deadline = num(k, v, 1, 86_400); i++; break;
      case '--waves': policy.waves = text(k, v); i++; break;
      case '--success-threshold': policy.successThreshold = text(k, v); i++; break;
      case '--max-failures': policy.maxFailures = text(k, v); i++; break;
      case '--timeout': policy.timeout = text(k, v); i++; break;
      case '--retries': policy.retries = text(k, v); i++; break;
      case '--no-status-cost': a.statusCost = false; break;
      case '--json': a.json = true; break;
      case '--report-only': a.reportOnly = true; break;
      default: fail(`unknown option ${k}`);
    }
  }
  if (a.workers > 1 && a.db === undefined) fail('--workers above 1 needs --db postgres://… (the workers share it)');
  if (Object.keys(policy).length > 0) {
    // Checked here, before a fleet is registered; `serve rollout create` checks them again.
    try {
      parsePolicy(policy);
    } catch (e) {
      fail((e as Error).message);
    }
    a.rollout = policy;
  }
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

const pct = (f: number): string => `${+(f * 100).toFixed(3)}%`;

function scenarioName(r: FleetResult): string {
  const kill = r.killed === null ? '' : r.killed.restarted ? ', cloud SIGKILLed and restarted' : ', one worker SIGKILLed';
  const p = r.rollout?.policy;
  const rollout = p === undefined ? '' : `, rollout ${p.waves} (max failures ${p.maxFailures}${p.successThreshold === '95%' ? '' : `, success threshold ${p.successThreshold}`}${p.timeout === 'none' ? '' : `, timeout ${p.timeout}`}${p.retries === 0 ? '' : `, retries ${p.retries}`})`;
  const failing = (r.failRate ?? 0) > 0 ? `, ${pct(r.failRate)} failing` : '';
  return `${r.devices} devices, ${r.workers} worker(s), ${r.engine}, ${r.broker.startsWith('embedded') ? 'embedded broker' : r.broker}${kill}${rollout}${failing}`;
}

/** "paused itself in wave 2: …; 112 of 1000 devices (11.2%) ever notified" (null: a plain job). */
function rolloutSentence(r: FleetResult): string | null {
  const ro = r.rollout ?? null;
  if (ro === null) return null;
  const what = ro.state === 'paused' ? 'paused itself' : ro.state === 'running' ? 'was still running' : ro.state;
  return `rollout ${what} in wave ${ro.wave} of ${ro.waves.length}${ro.reason ? `: ${ro.reason}` : ''}; ${r.notified} of ${r.devices} devices (${pct(r.notifiedFraction)}) ever notified`;
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
  const rollouts = all.filter((s) => (s.result.rollout ?? null) !== null);
  if (rollouts.length > 0) {
    out.push(
      '',
      '## Staged rollouts',
      '',
      'A rollout made with `otadiff serve rollout create` (waves, a success threshold, a failure limit that pauses it), with `--fail-rate` of the devices failing their update: each has a flash fault, downloads the package, finds its flash does not hold it and reports a verify failure (-3). `notified` counts the devices that ever received a notice, at the devices; `updated + failed` are the devices that took part. The bench waits until the rollout completed or paused itself and the devices already told have finished.',
      '',
      table(
        ['scenario', 'rollout', 'wave reached', 'notified', 'updated', 'failed', 'set to fail', 'ended after s'],
        rollouts.map((s) => {
          const r = s.result;
          const ro = r.rollout!;
          return [s.scenario, ro.state, `${ro.wave} of ${ro.waves.length}`, `${r.notified}/${r.devices} (${pct(r.notifiedFraction)})`, String(r.updated), String(r.failed), `${r.failing} (${pct(r.failRate)})`, ro.endedAtSeconds === null ? '-' : ro.endedAtSeconds.toFixed(1)];
        }),
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
  }
  for (const s of all) {
    const r = s.result;
    out.push('', `## ${s.scenario}`, '', `${s.date}: \`${s.command}\``, '');
    out.push(
      `Registered in ${r.registerSeconds.toFixed(1)} s, connected in ${r.connectSeconds.toFixed(1)} s; package ${r.packageBytes ?? '-'} bytes. The cloud's database at the end: ${Object.entries(r.cloud.states).map(([k, v]) => `${v} ${k}`).join(', ')}; ${r.cloud.notices} notices sent, ${r.cloud.devicesPushedTwice} device(s) sent more than one. ${r.killed === null ? '' : `${r.killed.worker} was SIGKILLed at ${r.killed.atSeconds.toFixed(1)} s${r.killed.restarted ? ' and started again' : ''}.`}`,
    );
    const ro = r.rollout ?? null;
    if (ro !== null) {
      out.push('', `${rolloutSentence(r)}. The cloud sent ${ro.cloudNotified} device(s) a notice; ${r.failing} device(s) were set to fail.`, '');
      out.push(
        table(
          ['wave', 'released by its end', 'devices', 'updated', 'failed', 'skipped', 'in progress', 'state'],
          // The view calls the current wave of a paused rollout running; here it says paused.
          ro.waves.map((w) => [String(w.wave), String(w.target), String(w.devices), String(w.succeeded), String(w.failed), String(w.skipped), String(w.inProgress), w.state === 'running' && ro.state !== 'running' ? ro.state : w.state]),
          ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
        ),
      );
    }
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
    failRate: a.failRate,
    failSeed: a.failSeed,
    rollout: a.rollout,
    timeoutSec: a.deadline,
    fromVersion: '3.0.4',
    toVersion: '3.0.5',
    old,
    neu,
    log,
  };
  const result = await runFleet(opts);
  if (result.rollout !== null && result.rollout.state === 'running') {
    // No answer to the scenario: print what there is, record nothing.
    if (a.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    fail(`the rollout was still running after the --deadline of ${a.deadline} s (${rolloutSentence(result)}); nothing recorded`);
  }
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
        ...(result.failed > 0 ? [{ label: 'failed', color: '#cf222e', points: result.timeline.map(([t, , , down]): [number, number] => [t, down ?? 0]) }] : []),
      ],
      markers,
    }),
  );
  writeFileSync(join(resultsDir, 'fleet.md'), report(next));
  if (a.json) process.stdout.write(`${JSON.stringify({ ...result, statusWriteCost: cost })}\n`);
  else {
    log(`${scenario}: ${result.updated}/${result.devices} updated, ${result.failed} failed, ${result.lost} lost, ${result.duplicatePushes} duplicate pushes, ${result.seconds.toFixed(1)} s, cloud peak RSS ${mib(result.cloudPeakRssBytes)}`);
    const sentence = rolloutSentence(result);
    if (sentence !== null) log(sentence);
    if (cost) for (const c of cost) log(`status write at ${c.devices} devices: progress ${c.progressMicros.toFixed(1)} µs, inform ${c.informMicros.toFixed(1)} µs`);
    log(`wrote bench/results/fleet.md`);
  }
}

main().catch((e: unknown) => fail((e as Error).message));
