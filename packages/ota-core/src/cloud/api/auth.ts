// Who is calling the management API, and may they run this route's operation? An `onRequest` hook:
// fastify runs it before it reads, parses or schema-checks the body, query or path, so an anonymous
// or under-privileged request is a 401 or 403 whatever it carries, and its body is never read.

import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { Actor } from '../audit.js';
import type { CloudStore } from '../cloud-store.js';
import { checkRole, type OperationName } from '../admin/operations.js';
import { operatorByToken } from '../admin/operators.js';

const actors = new WeakMap<FastifyRequest, Actor>();

/** The hook for one route: 401 without a known bearer token, 403 for a role below the operation's. */
export function authorize(store: CloudStore, op: OperationName): onRequestAsyncHookHandler {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const auth = req.headers.authorization;
    const token = typeof auth === 'string' && /^Bearer \S+$/.test(auth) ? auth.slice(7) : undefined;
    const actor = token === undefined ? undefined : await operatorByToken(store, token);
    if (actor === undefined) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: token === undefined ? 'a bearer token is required (serve add-operator)' : 'the bearer token is not valid' });
    }
    checkRole(op, actor);
    actors.set(req, actor);
  };
}

/** The actor `authorize` let through (a route without the hook has none: a bug, so it throws). */
export function actorOf(req: FastifyRequest): Actor {
  const a = actors.get(req);
  if (a === undefined) throw new Error(`no authorized actor for ${req.method} ${req.url}`);
  return a;
}
