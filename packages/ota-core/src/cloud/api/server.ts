// The management API (JSON over HTTP, fastify) and the console page, on `serve --api-port N`.
// Every /api/v1 request needs `Authorization: Bearer TOKEN` (serve add-operator): none or a bad one
// is 401, a role too low for the operation 403, both checked before the body is read (auth.ts). Each
// route is one operation of the service layer (admin/operations.ts), whose JSON schema fastify checks
// next: a bad body, query or path is a 400 naming the field, never a 500. The console (console/ beside the package's sources) and chart.js
// are static files.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { CloudStore } from '../cloud-store.js';
import { asServiceError, describeSchemaError, operation, runOperation, ServiceError, type OperationName, type ServiceHooks } from '../admin/operations.js';
import type { DeviceRef } from '../../protocol/topics.js';
import { actorOf, authorize } from './auth.js';

export interface ApiServerOptions {
  store: CloudStore;
  host?: string;
  port?: number;
  /** Largest firmware upload (default 64 MiB); every other route takes 1 MiB at most. */
  maxFirmwareBytes?: number;
  onRevoked?: (d: DeviceRef) => void;
  onRolloutChanged?: (id: string) => void;
  onJobCreated?: () => void;
  log?: (line: string) => void;
}

export interface ApiServerHandle {
  url: string;
  port: number;
  app: FastifyInstance;
  close(): Promise<void>;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
type Part = 'body' | 'query' | 'params';

/** Each route: its operation, and which parts of the request make its input. */
const ROUTES: Array<{ method: Method; url: string; op: OperationName; from: Part[]; status?: number }> = [
  { method: 'GET', url: '/api/v1/whoami', op: 'whoami', from: [] },
  { method: 'GET', url: '/api/v1/status', op: 'status.get', from: [] },
  { method: 'GET', url: '/api/v1/products', op: 'product.list', from: [] },
  { method: 'POST', url: '/api/v1/products', op: 'product.add', from: ['body'], status: 201 },
  { method: 'GET', url: '/api/v1/products/:productKey/firmware', op: 'firmware.list', from: ['params'] },
  { method: 'PUT', url: '/api/v1/products/:productKey/firmware/:version', op: 'firmware.add', from: ['params', 'query'], status: 201 },
  { method: 'GET', url: '/api/v1/devices', op: 'device.list', from: ['query'] },
  { method: 'POST', url: '/api/v1/devices', op: 'device.add', from: ['body'], status: 201 },
  { method: 'GET', url: '/api/v1/devices/:productKey/:deviceName', op: 'device.get', from: ['params'] },
  { method: 'DELETE', url: '/api/v1/devices/:productKey/:deviceName', op: 'device.remove', from: ['params'] },
  { method: 'GET', url: '/api/v1/devices/:productKey/:deviceName/history', op: 'device.history', from: ['params'] },
  { method: 'POST', url: '/api/v1/devices/:productKey/:deviceName/rotate-secret', op: 'device.rotate-secret', from: ['params', 'body'] },
  { method: 'POST', url: '/api/v1/devices/:productKey/:deviceName/tags', op: 'device.tag', from: ['params', 'body'] },
  { method: 'GET', url: '/api/v1/jobs', op: 'job.list', from: [] },
  { method: 'POST', url: '/api/v1/jobs', op: 'job.create', from: ['body'], status: 201 },
  { method: 'GET', url: '/api/v1/rollouts', op: 'rollout.list', from: ['query'] },
  { method: 'POST', url: '/api/v1/rollouts', op: 'rollout.create', from: ['body'], status: 201 },
  { method: 'GET', url: '/api/v1/rollouts/:id', op: 'rollout.get', from: ['params'] },
  { method: 'GET', url: '/api/v1/rollouts/:id/timeline', op: 'rollout.timeline', from: ['params'] },
  { method: 'POST', url: '/api/v1/rollouts/:id/pause', op: 'rollout.pause', from: ['params', 'body'] },
  { method: 'POST', url: '/api/v1/rollouts/:id/resume', op: 'rollout.resume', from: ['params', 'body'] },
  { method: 'POST', url: '/api/v1/rollouts/:id/cancel', op: 'rollout.cancel', from: ['params', 'body'] },
  { method: 'GET', url: '/api/v1/audit', op: 'audit.list', from: ['query'] },
  { method: 'GET', url: '/api/v1/operators', op: 'operator.list', from: [] },
  { method: 'POST', url: '/api/v1/operators', op: 'operator.add', from: ['body'], status: 201 },
  { method: 'DELETE', url: '/api/v1/operators/:name', op: 'operator.remove', from: ['params'] },
];

/** The part of an operation's schema that a request part carries (path names in params, the rest in the body or query). */
function partSchema(op: OperationName, url: string, part: Part, parts: Part[]): Record<string, unknown> {
  const full = operation(op).input as { properties: Record<string, unknown>; required?: string[] };
  const inPath = [...url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]);
  const mine = Object.keys(full.properties).filter((k) => (part === 'params' ? inPath.includes(k) : !inPath.includes(k) || !parts.includes('params')));
  return {
    type: 'object',
    properties: Object.fromEntries(mine.map((k) => [k, full.properties[k]])),
    required: (full.required ?? []).filter((k) => mine.includes(k)),
    additionalProperties: false,
  };
}

const consoleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'console');
const require = createRequire(import.meta.url);

const CONSOLE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const MiB = 1024 * 1024;
/** The most any route but the firmware upload reads (JSON bodies are small). */
const BODY_LIMIT = MiB;

const sizeText = (n: number): string => (n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`);

function staticFile(path: string): Buffer {
  return readFileSync(path);
}

export async function startApiServer(o: ApiServerOptions): Promise<ApiServerHandle> {
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, verbose: true } },
    // Name the field: "body.productKey must be …", "body.extra is not a known field".
    schemaErrorFormatter: (errors, dataVar) => {
      const d = describeSchemaError(errors[0], dataVar);
      return Object.assign(new Error(d.message), { field: d.field });
    },
  });
  const hooks: ServiceHooks = { onRevoked: o.onRevoked, onRolloutChanged: o.onRolloutChanged, onJobCreated: o.onJobCreated };
  const maxFirmware = o.maxFirmwareBytes ?? 64 * MiB;
  // No bodyLimit of its own: a parser's limit would apply to every route without one, so each route
  // sets its own below (the upload maxFirmware, the rest BODY_LIMIT).
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError & { field?: string }, req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const limit = req.routeOptions.bodyLimit ?? BODY_LIMIT;
      return reply.code(413).send({ error: `the body is larger than ${sizeText(limit)}, the most this route takes` });
    }
    const e = asServiceError(err);
    if (e instanceof ServiceError) return reply.code(e.status).send({ error: e.message, ...(e.field === undefined ? {} : { field: e.field }) });
    if (err.validation !== undefined) return reply.code(400).send({ error: err.message, field: err.field ?? 'body' });
    // fastify's own refusals: bad JSON, unknown content type, too large.
    const code = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (code === 500) o.log?.(`api: ${err.stack ?? err.message}`);
    return reply.code(code).send({ error: code === 500 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.slice(0, 200)}` }));

  for (const r of ROUTES) {
    const schema: Record<string, unknown> = {};
    for (const part of r.from) schema[part] = partSchema(r.op, r.url, part, r.from);
    const file = operation(r.op).file === true;
    app.route({
      method: r.method,
      url: r.url,
      schema,
      bodyLimit: file ? maxFirmware : BODY_LIMIT,
      // A POST whose body has nothing required may come without one (pause, resume, cancel).
      preValidation: async (req: FastifyRequest) => {
        if (r.from.includes('body') && (req.body === undefined || req.body === null)) req.body = {};
      },
      // The token and the role first, before the body is read or anything is validated.
      onRequest: authorize(o.store, r.op),
      handler: async (req: FastifyRequest, reply: FastifyReply) => {
        const actor = actorOf(req);
        const input: Record<string, unknown> = {};
        for (const part of r.from) Object.assign(input, (req as unknown as Record<Part, Record<string, unknown> | undefined>)[part] ?? {});
        let upload: Uint8Array | undefined;
        if (file) {
          if (!Buffer.isBuffer(req.body)) throw new ServiceError(400, 'the firmware image must be the body, as application/octet-stream', 'body');
          upload = new Uint8Array(req.body);
        }
        const out = await runOperation(r.op, { store: o.store, actor, hooks }, input, upload);
        return reply.code(r.status ?? 200).send(out);
      },
    });
  }

  // The console: a page, its script and style, and chart.js's UMD build from node_modules. The page
  // holds an operator's token: it runs only its own scripts, talks only to this server, and is never
  // framed (CONSOLE_HEADERS).
  const page = (name: string, type: string) => (_req: FastifyRequest, reply: FastifyReply) => reply.type(type).headers(CONSOLE_HEADERS).header('cache-control', 'no-cache').send(staticFile(join(consoleDir, name)));
  app.get('/', page('index.html', 'text/html; charset=utf-8'));
  app.get('/console.js', page('console.js', 'text/javascript; charset=utf-8'));
  app.get('/console.css', page('console.css', 'text/css; charset=utf-8'));
  // chart.js's exports map names no UMD file: find it beside the package's CommonJS entry.
  const chartJs = join(dirname(require.resolve('chart.js')), 'chart.umd.min.js');
  app.get('/vendor/chart.umd.min.js', (_req, reply) => reply.type('text/javascript; charset=utf-8').headers(CONSOLE_HEADERS).header('cache-control', 'max-age=86400').send(staticFile(chartJs)));

  await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const host = o.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    app,
    close: () => app.close(),
  };
}
