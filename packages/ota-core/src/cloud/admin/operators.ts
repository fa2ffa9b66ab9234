// Operators of the management API: a name, a role and a bearer token. The token is shown once, when
// the operator is added; the database keeps only its SHA-256 (a token is 32 random bytes, so a hash
// lookup is as good as a slow password hash and needs no salt). Roles rank viewer < operator < admin:
// viewers read, operators also run rollouts and jobs, admins also manage products, firmware, devices
// and operators.

import { createHash, randomBytes } from 'node:crypto';
import { writeAudit, type Actor } from '../audit.js';
import { CloudStoreError, isUniqueViolation, type CloudStore } from '../cloud-store.js';
import type { Role } from '../db/schema.js';

export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const NAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
const TOKEN_PREFIX = 'otd_';

export const roleAllows = (has: Role, needs: Role): boolean => RANK[has] >= RANK[needs];
export const isRole = (r: unknown): r is Role => typeof r === 'string' && (ROLES as readonly string[]).includes(r);
export const isOperatorName = (n: unknown): n is string => typeof n === 'string' && NAME_RE.test(n);

const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

export interface OperatorInfo {
  name: string;
  role: Role;
  createdAt: number;
  createdBy: string;
}

/** Adds an operator; the token in the answer is the only copy there will ever be. */
export async function addOperator(store: CloudStore, o: { name: string; role: Role }, actor: Actor): Promise<{ name: string; role: Role; token: string }> {
  if (!isOperatorName(o.name)) throw new CloudStoreError('an operator name is 1-64 of letters, digits and _ . @ -');
  if (!isRole(o.role)) throw new CloudStoreError(`role must be ${ROLES.join(', ')}`);
  const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  try {
    await store.handle.write(async (trx) => {
      const now = Date.now();
      await trx.insertInto('operators').values({ name: o.name, role: o.role, token_hash: hashToken(token), created_at: now, created_by: actor.name }).execute();
      await writeAudit(trx, { actor, action: 'operator.add', target: o.name, detail: { role: o.role } }, now);
    });
  } catch (e) {
    if (isUniqueViolation(e)) throw new CloudStoreError(`operator ${o.name} exists`, 'conflict');
    throw e;
  }
  return { name: o.name, role: o.role, token };
}

export async function removeOperator(store: CloudStore, name: string, actor: Actor): Promise<void> {
  await store.handle.write(async (trx) => {
    const r = await trx.deleteFrom('operators').where('name', '=', name).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new CloudStoreError(`unknown operator ${name}`, 'not-found');
    await writeAudit(trx, { actor, action: 'operator.remove', target: name });
  });
}

export async function listOperators(store: CloudStore): Promise<OperatorInfo[]> {
  const rows = await store.db.selectFrom('operators').select(['name', 'role', 'created_at', 'created_by']).orderBy('name').execute();
  return rows.map((r) => ({ name: r.name, role: r.role, createdAt: Number(r.created_at), createdBy: r.created_by }));
}

/** The operator a bearer token belongs to, or undefined. */
export async function operatorByToken(store: CloudStore, token: string): Promise<Actor | undefined> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
  const r = await store.db.selectFrom('operators').select(['name', 'role']).where('token_hash', '=', hashToken(token)).executeTakeFirst();
  return r === undefined || !isRole(r.role) ? undefined : { name: r.name, role: r.role };
}
