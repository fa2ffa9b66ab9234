// The service layer: every thing an operator can do to the cloud, as one operation with the role it
// needs and a JSON schema of its input. The management API (api/server.ts) and the CLI's `serve`
// subcommands both call runOperation, so a change made either way is checked, validated, done and
// audited alike (the audit row is written in the change's own transaction: audit.ts).

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Actor } from '../audit.js';
import { listAudit } from '../audit.js';
import { CloudStoreError, type CloudStore, type PackageMode } from '../cloud-store.js';
import { ROLLOUT_STATES, type Role, type RolloutState } from '../db/schema.js';
import { TagError } from '../device-tags.js';
import { PolicyError } from '../rollout-policy.js';
import { cancelRollout, createRollout, getRollout, listRollouts, pauseRollout, resumeRollout } from '../rollouts.js';
import type { DeviceRef } from '../../protocol/topics.js';
import { deviceHistory, fleetSummary, getDevice, listDevices, rolloutTimeline } from './fleet-view.js';
import { addOperator, listOperators, removeOperator, roleAllows, ROLES } from './operators.js';

/** A refusal with the HTTP status the API answers (the CLI prints the message). */
export class ServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** What a running cloud does after a change (end sessions at once, tick a rollout, drain the queue). */
export interface ServiceHooks {
  onRevoked?(d: DeviceRef): void;
  onRolloutChanged?(id: string): void;
  onJobCreated?(): void;
}

export interface ServiceContext {
  store: CloudStore;
  actor: Actor;
  hooks?: ServiceHooks;
}

type Schema = Record<string, unknown>;

interface Operation {
  /** The least role allowed. */
  role: Role;
  /** JSON schema of the input object (additional properties refused). */
  input: Schema;
  /** Its input carries a file (the firmware image), beside the JSON. */
  file?: boolean;
  run(ctx: ServiceContext, input: Record<string, unknown>, file?: Uint8Array): Promise<unknown>;
}

// ---------------------------------------------------------------- schemas

const str = (pattern: string, description: string): Schema => ({ type: 'string', pattern, description });
const PK = str('^[A-Za-z0-9]{1,32}$', 'product key: 1-32 letters and digits');
const DN = str('^[A-Za-z0-9_@.:-]{4,32}$', 'device name: 4-32 of letters, digits, _ @ . : -');
const VERSION = str('^[0-9A-Za-z.+_-]{1,32}$', 'firmware version, e.g. 1.2.0');
const TAG = str('^[A-Za-z0-9_.:-]{1,64}$', 'tag: 1-64 of letters, digits, _ . : -');
const SECRET = str('^[\\x21-\\x7e]{8,128}$', 'secret: 8-128 printable ASCII characters, no spaces');
const TAGS: Schema = { type: 'array', items: TAG, maxItems: 32 };
const INT = (min: number, max: number): Schema => ({ type: 'integer', minimum: min, maximum: max });
const LIMIT: Schema = { anyOf: [INT(1, 1000), str('^[1-9][0-9]{0,3}$', 'a count from 1')] };
const CURSOR = str('^[A-Za-z0-9_-]{1,400}$', 'a cursor from the previous page');
const AMOUNT: Schema = { anyOf: [str('^[0-9]{1,3}(\\.[0-9]{1,3})?%$|^[0-9]{1,8}$', 'a percentage such as 5% or a count'), INT(0, 10_000_000)] };
const object = (properties: Record<string, Schema>, required: string[] = []): Schema => ({ type: 'object', properties, required, additionalProperties: false });
const DEVICE = object({ productKey: PK, deviceName: DN }, ['productKey', 'deviceName']);
const ID = object({ id: str('^[A-Za-z0-9-]{1,40}$', 'a rollout id') }, ['id']);

const limitOf = (v: unknown, fallback: number): number => (v === undefined ? fallback : Math.min(1000, Math.max(1, Number(v))));
const s = (v: unknown): string => v as string;
const opt = (v: unknown): string | undefined => v as string | undefined;

// ---------------------------------------------------------------- operations

export const OPERATIONS = {
  whoami: { role: 'viewer', input: object({}), run: async (ctx) => ({ name: ctx.actor.name, role: ctx.actor.role }) },

  'status.get': { role: 'viewer', input: object({}), run: async (ctx) => ({ products: await fleetSummary(ctx.store), rollouts: (await listRollouts(ctx.store, { limit: 20 })).rollouts.map(brief) }) },

  'product.list': { role: 'viewer', input: object({}), run: async (ctx) => ({ products: await ctx.store.productList() }) },
  'product.add': {
    role: 'admin',
    input: object({ productKey: PK, productSecret: SECRET, mode: { enum: ['inplace', 'ab', 'full'] }, splitSize: INT(4096, 1 << 24), dictSize: INT(4096, 1 << 27) }, ['productKey']),
    run: async (ctx, i) => {
      const p = await ctx.store.addProduct(s(i.productKey), {
        productSecret: opt(i.productSecret),
        mode: i.mode as PackageMode | undefined,
        splitSize: i.splitSize as number | undefined,
        dictSize: i.dictSize as number | undefined,
        audit: { actor: ctx.actor, action: 'product.add', target: s(i.productKey) },
      });
      return { productSecret: p.productSecret, ...p.config };
    },
  },

  'firmware.list': { role: 'viewer', input: object({ productKey: PK }, ['productKey']), run: async (ctx, i) => ({ firmware: await ctx.store.firmwareReleases(s(i.productKey)) }) },
  'firmware.add': {
    role: 'admin',
    file: true,
    input: object({ productKey: PK, version: VERSION, securityCounter: { anyOf: [INT(0, 0xffff_ffff), str('^[0-9]{1,10}$', 'a counter')] }, allowDowngrade: { anyOf: [{ type: 'boolean' }, { enum: ['true', 'false', '1', '0'] }] } }, ['productKey', 'version']),
    run: async (ctx, i, file) => {
      if (file === undefined || file.length === 0) throw new ServiceError(400, 'the firmware image is missing (the request body)', 'body');
      const securityCounter = i.securityCounter === undefined ? undefined : Number(i.securityCounter);
      const allowDowngrade = i.allowDowngrade === true || i.allowDowngrade === 'true' || i.allowDowngrade === '1';
      const r = await ctx.store.addFirmware(s(i.productKey), s(i.version), file, { securityCounter, allowDowngrade, audit: { actor: ctx.actor, action: 'firmware.add', target: s(i.productKey) } });
      return { productKey: i.productKey, version: i.version, ...r };
    },
  },

  'device.list': {
    role: 'viewer',
    input: object({ productKey: PK, tag: TAG, limit: LIMIT, cursor: CURSOR }),
    run: (ctx, i) => listDevices(ctx.store, { productKey: opt(i.productKey), tag: opt(i.tag), limit: limitOf(i.limit, 100), cursor: opt(i.cursor) }),
  },
  'device.get': { role: 'viewer', input: DEVICE, run: (ctx, i) => getDevice(ctx.store, s(i.productKey), s(i.deviceName)) },
  'device.history': { role: 'viewer', input: DEVICE, run: async (ctx, i) => ({ productKey: i.productKey, deviceName: i.deviceName, history: await deviceHistory(ctx.store, s(i.productKey), s(i.deviceName)) }) },
  'device.add': {
    role: 'admin',
    input: object({ productKey: PK, deviceName: DN, deviceSecret: SECRET, tags: TAGS }, ['productKey', 'deviceName']),
    run: async (ctx, i) => {
      const d = await ctx.store.addDevice(s(i.productKey), s(i.deviceName), opt(i.deviceSecret), { tags: i.tags as string[] | undefined, audit: { actor: ctx.actor, action: 'device.add', target: '' } });
      return { ...d, tags: (i.tags as string[] | undefined) ?? [] };
    },
  },
  'device.remove': {
    role: 'admin',
    input: DEVICE,
    run: async (ctx, i) => {
      const d = { productKey: s(i.productKey), deviceName: s(i.deviceName) };
      if (!(await ctx.store.removeDevice(d.productKey, d.deviceName, { audit: { actor: ctx.actor, action: 'device.remove', target: '' } }))) throw new CloudStoreError(`unknown device ${d.productKey}/${d.deviceName}`, 'not-found');
      ctx.hooks?.onRevoked?.(d);
      return { ...d, removed: true };
    },
  },
  'device.rotate-secret': {
    role: 'admin',
    input: object({ productKey: PK, deviceName: DN, deviceSecret: SECRET }, ['productKey', 'deviceName']),
    run: async (ctx, i) => {
      const r = await ctx.store.rotateSecret(s(i.productKey), s(i.deviceName), { deviceSecret: opt(i.deviceSecret), audit: { actor: ctx.actor, action: 'device.rotate-secret', target: '' } });
      ctx.hooks?.onRevoked?.(r);
      return r;
    },
  },
  'device.tag': {
    role: 'admin',
    input: object({ productKey: PK, deviceName: DN, add: TAGS, remove: TAGS }, ['productKey', 'deviceName']),
    run: async (ctx, i) => ({
      productKey: i.productKey,
      deviceName: i.deviceName,
      tags: await ctx.store.tagDevice(s(i.productKey), s(i.deviceName), { add: i.add as string[] | undefined, remove: i.remove as string[] | undefined, audit: { actor: ctx.actor, action: 'device.tag', target: '' } }),
    }),
  },

  'job.list': { role: 'viewer', input: object({}), run: async (ctx) => ({ jobs: await ctx.store.jobs() }) },
  'job.create': {
    role: 'operator',
    input: object({ productKey: PK, version: VERSION, devices: { type: 'array', items: DN, maxItems: 100_000 }, downloadProtocol: { enum: ['http', 'coap'] } }, ['productKey', 'version']),
    run: async (ctx, i) => {
      const j = await ctx.store.createJob({
        productKey: s(i.productKey),
        version: s(i.version),
        devices: i.devices as string[] | undefined,
        downloadProtocol: i.downloadProtocol as 'http' | 'coap' | undefined,
        audit: { actor: ctx.actor, action: 'job.create', target: '' },
      });
      ctx.hooks?.onJobCreated?.();
      return j;
    },
  },

  'rollout.list': {
    role: 'viewer',
    input: object({ productKey: PK, state: { enum: [...ROLLOUT_STATES] }, limit: LIMIT, before: str('^[A-Za-z0-9-]{1,40}$', 'a rollout id') }),
    run: (ctx, i) => listRollouts(ctx.store, { productKey: opt(i.productKey), state: i.state as RolloutState | undefined, limit: limitOf(i.limit, 50), before: opt(i.before) }),
  },
  'rollout.get': { role: 'viewer', input: ID, run: async (ctx, i) => found(await getRollout(ctx.store, s(i.id)), `unknown rollout ${s(i.id)}`) },
  'rollout.timeline': {
    role: 'viewer',
    input: ID,
    run: async (ctx, i) => {
      const r = found(await getRollout(ctx.store, s(i.id)), `unknown rollout ${s(i.id)}`);
      const points = await rolloutTimeline(ctx.store, r.jobId, r.createdAt);
      // `now`: the cloud's clock, where a running rollout's lines end (the browser's may be off).
      return { id: r.id, state: r.state, devices: r.devices, now: Date.now(), points };
    },
  },
  'rollout.create': {
    role: 'operator',
    input: object(
      {
        productKey: PK,
        version: VERSION,
        groups: TAGS,
        waves: { anyOf: [str('^[0-9.%, ]{1,200}$', 'waves such as 1%,10%,100% or 10,100,1000'), { type: 'array', items: AMOUNT, minItems: 1, maxItems: 20 }] },
        successThreshold: { anyOf: [str('^[0-9]{1,3}(\\.[0-9]{1,3})?%?$', 'a percentage such as 95%'), { type: 'number', minimum: 0, maximum: 100 }] },
        maxFailures: AMOUNT,
        timeout: { anyOf: [str('^([0-9]{1,7}[smhd]?|off)$', 'a duration such as 30m'), INT(0, 365 * 86_400)] },
        retries: INT(0, 10),
        downloadProtocol: { enum: ['http', 'coap'] },
      },
      ['productKey', 'version'],
    ),
    run: async (ctx, i) => {
      const r = await createRollout(
        ctx.store,
        {
          productKey: s(i.productKey),
          version: s(i.version),
          groups: i.groups as string[] | undefined,
          waves: i.waves,
          successThreshold: i.successThreshold,
          maxFailures: i.maxFailures,
          timeout: i.timeout,
          retries: i.retries,
          downloadProtocol: i.downloadProtocol as 'http' | 'coap' | undefined,
        },
        ctx.actor,
      );
      ctx.hooks?.onRolloutChanged?.(r.id);
      return r;
    },
  },
  'rollout.pause': {
    role: 'operator',
    input: object({ id: str('^[A-Za-z0-9-]{1,40}$', 'a rollout id'), reason: { type: 'string', maxLength: 500 } }, ['id']),
    run: async (ctx, i) => changed(ctx, await pauseRollout(ctx.store, s(i.id), ctx.actor, opt(i.reason))),
  },
  'rollout.resume': { role: 'operator', input: ID, run: async (ctx, i) => changed(ctx, await resumeRollout(ctx.store, s(i.id), ctx.actor)) },
  'rollout.cancel': { role: 'operator', input: ID, run: async (ctx, i) => changed(ctx, await cancelRollout(ctx.store, s(i.id), ctx.actor)) },

  'audit.list': {
    role: 'viewer',
    input: object({ limit: LIMIT, before: { anyOf: [INT(1, Number.MAX_SAFE_INTEGER), str('^[0-9]{1,16}$', 'an audit id')] }, target: { type: 'string', maxLength: 200 } }),
    run: (ctx, i) => listAudit(ctx.store.db, { limit: limitOf(i.limit, 100), before: i.before === undefined ? undefined : Number(i.before), target: opt(i.target) }),
  },

  'operator.list': { role: 'admin', input: object({}), run: async (ctx) => ({ operators: await listOperators(ctx.store) }) },
  'operator.add': { role: 'admin', input: object({ name: str('^[A-Za-z0-9_.@-]{1,64}$', 'operator name: 1-64 of letters, digits, _ . @ -'), role: { enum: [...ROLES] } }, ['name', 'role']), run: (ctx, i) => addOperator(ctx.store, { name: s(i.name), role: i.role as Role }, ctx.actor) },
  'operator.remove': {
    role: 'admin',
    input: object({ name: str('^[A-Za-z0-9_.@-]{1,64}$', 'operator name') }, ['name']),
    run: async (ctx, i) => {
      await removeOperator(ctx.store, s(i.name), ctx.actor);
      return { name: i.name, removed: true };
    },
  },
} satisfies Record<string, Operation>;

export type OperationName = keyof typeof OPERATIONS;

function found<T>(v: T | undefined, message: string): T {
  if (v === undefined) throw new ServiceError(404, message);
  return v;
}

function changed<T extends { id: string }>(ctx: ServiceContext, r: T): T {
  ctx.hooks?.onRolloutChanged?.(r.id);
  return r;
}

function brief(r: Awaited<ReturnType<typeof getRollout>> & object) {
  return { id: r.id, productKey: r.productKey, version: r.version, state: r.state, reason: r.reason, wave: r.wave, waves: r.waves.length, devices: r.devices, counts: r.counts };
}

export function operation(name: OperationName): Operation {
  return OPERATIONS[name] as Operation;
}

// ---------------------------------------------------------------- running one

const ajv = new Ajv({ allErrors: false, coerceTypes: false, useDefaults: false, removeAdditional: false, strict: false, verbose: true });
const compiled = new Map<string, ValidateFunction>();

/** "productKey: must match …", naming the field (a missing or unexpected one too). */
export function describeSchemaError(e: ErrorObject, where = ''): { field: string; message: string } {
  const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const extra = (e.params as { missingProperty?: string; additionalProperty?: string }).missingProperty ?? (e.params as { additionalProperty?: string }).additionalProperty;
  const field = [where, path, extra].filter((x) => x !== undefined && x !== '').join('.');
  const desc = (e.parentSchema as { description?: string } | undefined)?.description;
  let message = e.keyword === 'required' ? 'is required' : e.keyword === 'additionalProperties' ? 'is not a known field' : (e.message ?? 'is invalid');
  if (desc !== undefined && (e.keyword === 'pattern' || e.keyword === 'type' || e.keyword === 'anyOf')) message = `must be ${desc}`;
  return { field: field === '' ? 'body' : field, message: `${field === '' ? 'body' : field} ${message}` };
}

export function validateInput(name: OperationName, input: unknown): Record<string, unknown> {
  let v = compiled.get(name);
  if (v === undefined) {
    v = ajv.compile(operation(name).input);
    compiled.set(name, v);
  }
  if (!v(input)) {
    const d = describeSchemaError(v.errors![0]);
    throw new ServiceError(400, d.message, d.field);
  }
  return input as Record<string, unknown>;
}

/** Store and policy refusals as ServiceErrors (the user's input, never a 500). */
export function asServiceError(e: unknown): unknown {
  if (e instanceof ServiceError) return e;
  if (e instanceof CloudStoreError) return new ServiceError(e.kind === 'not-found' ? 404 : e.kind === 'conflict' ? 409 : 400, e.message);
  const name = (e as Error)?.name;
  if (e instanceof PolicyError || e instanceof TagError || name === 'RegistryError' || name === 'ObjectStoreError' || name === 'VersionError') return new ServiceError(400, (e as Error).message);
  return e;
}

/** A 403 unless the actor's role is enough for the operation (the API checks it before reading a body). */
export function checkRole(name: OperationName, actor: Actor): void {
  const needs = operation(name).role;
  if (!roleAllows(actor.role, needs)) throw new ServiceError(403, `${name} needs the ${needs} role; ${actor.name} is ${actor.role}`);
}

/** Checks the actor's role and the input, runs the operation; refusals are ServiceErrors. */
export async function runOperation(name: OperationName, ctx: ServiceContext, input: unknown, file?: Uint8Array): Promise<unknown> {
  const op = operation(name);
  checkRole(name, ctx.actor);
  const checked = validateInput(name, input);
  try {
    return await op.run(ctx, checked, file);
  } catch (e) {
    throw asServiceError(e);
  }
}
