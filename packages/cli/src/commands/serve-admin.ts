// `otadiff serve rollout …`, device tags, history, removal and secret rotation, operators and the
// audit log: each one operation of the service layer (the management API's code path), run as the
// CLI's administrator on the data directory's database.
import type { AuditRecord, HistoryEntry, OperatorInfo, RolloutView } from '@otadiff/ota-core';
import { operate, type DataOption } from './serve.js';
import { stdout } from './run-until.js';
import { CliError } from '../size-arg.js';

type Json = { json?: boolean };
const when = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));

function rolloutLines(r: RolloutView): string[] {
  const p = r.policyText;
  const out = [
    `rollout ${r.id}: ${r.productKey} -> ${r.version} for ${r.groups === null ? 'all devices' : `devices tagged ${r.groups.join(', ')}`} (${r.devices}): ${r.state}${r.reason ? ` (${r.reason})` : ''}`,
    `  waves ${p.waves}; success threshold ${p.successThreshold}; max failures ${p.maxFailures} a wave; timeout ${p.timeout}; retries ${p.retries}${r.rollback ? '; the release allows a downgrade: devices on newer versions go back to it' : ''}`,
  ];
  for (const w of r.waves) {
    out.push(
      `  wave ${w.index + 1} (up to ${w.target}): ${w.state}, ${w.devices} device(s): ${w.succeeded} updated, ${w.failed} failed, ${w.skipped} skipped${w.cancelled ? `, ${w.cancelled} cancelled` : ''}, ${w.inProgress} in progress`,
    );
  }
  out.push(`  created ${when(r.createdAt)} by ${r.createdBy}${r.finishedAt === null ? '' : `, ended ${when(r.finishedAt)}`}`);
  return out;
}

const print = (r: RolloutView, json?: boolean): void => (json ? stdout(JSON.stringify(r)) : rolloutLines(r).forEach((l) => stdout(l)));

export async function rolloutCreateCommand(
  opts: DataOption & Json & { productKey: string; version: string; groups?: string[]; waves?: string; successThreshold?: string; maxFailures?: string; timeout?: string; retries?: string; downloadProtocol?: string },
): Promise<void> {
  // 0-10, as the rollout policy and the API's schema take it (a plain integer: no 010, 1e1, 2.5).
  if (opts.retries !== undefined && !/^(?:[0-9]|10)$/.test(opts.retries)) throw new CliError(`--retries must be an integer from 0 to 10, not "${opts.retries.slice(0, 60)}"`);
  const retries = opts.retries === undefined ? undefined : Number(opts.retries);
  const input: Record<string, unknown> = { productKey: opts.productKey, version: opts.version };
  if (opts.groups !== undefined && opts.groups.length > 0) input.groups = opts.groups.flatMap((g) => g.split(',')).filter((g) => g !== '');
  if (opts.waves !== undefined) input.waves = opts.waves;
  if (opts.successThreshold !== undefined) input.successThreshold = opts.successThreshold;
  if (opts.maxFailures !== undefined) input.maxFailures = opts.maxFailures;
  if (opts.timeout !== undefined) input.timeout = opts.timeout;
  if (retries !== undefined) input.retries = retries;
  if (opts.downloadProtocol !== undefined) input.downloadProtocol = opts.downloadProtocol;
  const r = await operate<RolloutView>(opts, 'rollout.create', input);
  print(r, opts.json);
  if (!opts.json) stdout('  (a running server pushes it: each wave starts when the one before reached its success threshold)');
}

/** A rollout id as rollout create makes them and the "more" hint prints them (the service's pattern). */
const ROLLOUT_ID = /^[A-Za-z0-9-]{1,40}$/;

export async function rolloutListCommand(opts: DataOption & Json & { productKey?: string; state?: string; limit?: string; before?: string }): Promise<void> {
  if (opts.before !== undefined && !ROLLOUT_ID.test(opts.before)) throw new CliError(`--before must be a rollout id (the "more" hint of the previous page), not "${opts.before.slice(0, 60)}"`);
  const input: Record<string, unknown> = {};
  if (opts.productKey !== undefined) input.productKey = opts.productKey;
  if (opts.state !== undefined) input.state = opts.state;
  if (opts.limit !== undefined) input.limit = opts.limit;
  if (opts.before !== undefined) input.before = opts.before;
  const r = await operate<{ rollouts: RolloutView[]; next?: string }>(opts, 'rollout.list', input);
  if (opts.json) return stdout(JSON.stringify(r));
  if (r.rollouts.length === 0) stdout('no rollouts');
  for (const x of r.rollouts) {
    const done = (x.counts.succeeded ?? 0) + (x.counts.skipped ?? 0);
    stdout(`${x.id}  ${x.productKey} -> ${x.version}  ${x.state}  wave ${x.wave + 1}/${x.waves.length}  ${done}/${x.devices} done, ${x.counts.failed ?? 0} failed${x.reason ? `  (${x.reason})` : ''}`);
  }
  if (r.next !== undefined) stdout(`(more: --before ${r.next})`);
}

export async function rolloutShowCommand(id: string, opts: DataOption & Json): Promise<void> {
  print(await operate<RolloutView>(opts, 'rollout.get', { id }), opts.json);
}

export async function rolloutActionCommand(action: 'pause' | 'resume' | 'cancel', id: string, opts: DataOption & Json & { reason?: string }): Promise<void> {
  const input: Record<string, unknown> = { id };
  if (action === 'pause' && opts.reason !== undefined) input.reason = opts.reason;
  print(await operate<RolloutView>(opts, `rollout.${action}`, input), opts.json);
}

export async function deviceTagCommand(opts: DataOption & Json & { productKey: string; deviceName: string; add?: string[]; remove?: string[] }): Promise<void> {
  if ((opts.add ?? []).length === 0 && (opts.remove ?? []).length === 0) throw new CliError('give --add TAG and/or --remove TAG');
  const r = await operate<{ productKey: string; deviceName: string; tags: string[] }>(opts, 'device.tag', {
    productKey: opts.productKey,
    deviceName: opts.deviceName,
    ...(opts.add?.length ? { add: opts.add } : {}),
    ...(opts.remove?.length ? { remove: opts.remove } : {}),
  });
  if (opts.json) stdout(JSON.stringify(r));
  else stdout(`device ${r.productKey}/${r.deviceName}: tags ${r.tags.join(', ') || '(none)'}`);
}

export async function deviceHistoryCommand(opts: DataOption & Json & { productKey: string; deviceName: string }): Promise<void> {
  const r = await operate<{ productKey: string; deviceName: string; history: HistoryEntry[] }>(opts, 'device.history', { productKey: opts.productKey, deviceName: opts.deviceName });
  if (opts.json) return stdout(JSON.stringify(r));
  if (r.history.length === 0) stdout(`device ${r.productKey}/${r.deviceName}: no job or rollout yet`);
  for (const h of r.history) {
    stdout(`${h.rolloutId === null ? `job ${h.jobId}` : `rollout ${h.rolloutId}${h.wave === null ? '' : ` wave ${h.wave + 1}`}`}: ${h.version}${h.fromVersion ? ` from ${h.fromVersion}` : ''}, ${h.state} (${h.pushes} notice(s)${h.attempts ? `, ${h.attempts} retr${h.attempts === 1 ? 'y' : 'ies'}` : ''})`);
    for (const e of h.events) stdout(`  ${when(e.at)}  ${e.state}${e.step === null ? '' : ` ${e.step}`}${e.detail ? `  ${e.detail}` : ''}`);
  }
}

export async function removeDeviceCommand(opts: DataOption & Json & { productKey: string; deviceName: string }): Promise<void> {
  const r = await operate<{ productKey: string; deviceName: string }>(opts, 'device.remove', { productKey: opts.productKey, deviceName: opts.deviceName });
  if (opts.json) stdout(JSON.stringify({ ...r, removed: true }));
  else stdout(`device ${r.productKey}/${r.deviceName} removed; its sign-in stops working, and running servers end its live sessions`);
}

export async function rotateSecretCommand(opts: DataOption & Json & { productKey: string; deviceName: string; deviceSecret?: string }): Promise<void> {
  const r = await operate<{ productKey: string; deviceName: string; deviceSecret: string }>(opts, 'device.rotate-secret', {
    productKey: opts.productKey,
    deviceName: opts.deviceName,
    ...(opts.deviceSecret === undefined ? {} : { deviceSecret: opts.deviceSecret }),
  });
  if (opts.json) stdout(JSON.stringify(r));
  else stdout(`device ${r.productKey}/${r.deviceName}: new deviceSecret ${r.deviceSecret} (the old one stops working; running servers end its live sessions)`);
}

export async function addOperatorCommand(opts: DataOption & Json & { name: string; role: string }): Promise<void> {
  const r = await operate<{ name: string; role: string; token: string }>(opts, 'operator.add', { name: opts.name, role: opts.role });
  if (opts.json) stdout(JSON.stringify(r));
  else stdout(`operator ${r.name} (${r.role}): token ${r.token}\n  (shown once: only its hash is kept; send it as "Authorization: Bearer TOKEN")`);
}

export async function removeOperatorCommand(opts: DataOption & Json & { name: string }): Promise<void> {
  await operate(opts, 'operator.remove', { name: opts.name });
  if (opts.json) stdout(JSON.stringify({ name: opts.name, removed: true }));
  else stdout(`operator ${opts.name} removed: its token no longer works`);
}

export async function operatorsCommand(opts: DataOption & Json): Promise<void> {
  const r = await operate<{ operators: OperatorInfo[] }>(opts, 'operator.list', {});
  if (opts.json) return stdout(JSON.stringify(r));
  if (r.operators.length === 0) stdout('no operators (add one: serve add-operator --name N --role admin)');
  for (const o of r.operators) stdout(`${o.name}  ${o.role}  added ${when(o.createdAt)} by ${o.createdBy}`);
}

export async function auditCommand(opts: DataOption & Json & { limit?: string; before?: string; target?: string }): Promise<void> {
  const input: Record<string, unknown> = {};
  if (opts.limit !== undefined) input.limit = opts.limit;
  if (opts.before !== undefined) input.before = opts.before;
  if (opts.target !== undefined) input.target = opts.target;
  const r = await operate<{ entries: AuditRecord[]; next?: number }>(opts, 'audit.list', input);
  if (opts.json) return stdout(JSON.stringify(r));
  for (const e of r.entries) stdout(`${when(e.at)}  ${e.actor} (${e.role})  ${e.action}  ${e.target}  ${JSON.stringify(e.detail)}`);
  if (r.next !== undefined) stdout(`(older: --before ${r.next})`);
}
