// The fleet bench's rollout, made as an operator makes one: `otadiff serve rollout create … --json`
// on the cloud's data directory and database (the CLI runs the service layer's rollout.create, the
// management API's code path). The bench then reads it back with rollout.get.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runOperation, type CloudStore, type RolloutView } from '@otadiff/ota-core';
import { cliBin } from '../paths.js';

/** The rollout's policy as `serve rollout create` takes it (text, passed through unchanged). */
export interface RolloutArgs {
  waves?: string;
  successThreshold?: string;
  maxFailures?: string;
  timeout?: string;
  retries?: string;
}

const FLAGS: Array<[keyof RolloutArgs, string]> = [
  ['waves', '--waves'],
  ['successThreshold', '--success-threshold'],
  ['maxFailures', '--max-failures'],
  ['timeout', '--timeout'],
  ['retries', '--retries'],
];

export function rolloutCreateArgs(o: { dataDir: string; db?: string; productKey: string; version: string; policy: RolloutArgs }): string[] {
  const args = ['serve', 'rollout', 'create', '--data', o.dataDir, ...(o.db === undefined ? [] : ['--db', o.db]), '--product-key', o.productKey, '--version', o.version];
  for (const [k, flag] of FLAGS) if (o.policy[k] !== undefined) args.push(flag, o.policy[k]!);
  return [...args, '--json'];
}

/** The environment of a child that must use the database it is given, not $OTADIFF_DB. */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OTADIFF_DB;
  return env;
}

export async function createRolloutWithCli(o: Parameters<typeof rolloutCreateArgs>[0]): Promise<RolloutView> {
  let out: string;
  try {
    out = (await promisify(execFile)(process.execPath, [cliBin, ...rolloutCreateArgs(o)], { env: childEnv(), maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`otadiff serve rollout create failed: ${stderr.split('\n').pop() || (e as Error).message}`);
  }
  return JSON.parse(out) as RolloutView;
}

/** The rollout as `serve rollout show` sees it. */
export async function readRollout(store: CloudStore, id: string): Promise<RolloutView> {
  return (await runOperation('rollout.get', { store, actor: { name: 'fleet-bench', role: 'viewer' } }, { id })) as RolloutView;
}
