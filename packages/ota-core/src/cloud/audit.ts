// The audit log: every change made through the service layer (the CLI's `serve` subcommands and the
// management API alike) is one row, written in the transaction of the change itself, so a change
// and its record commit together or not at all. Details never hold a secret or a token.

import type { Kysely, Transaction } from 'kysely';
import type { Database, Role } from './db/schema.js';

/** Who asks: an operator of the API (by token) or the CLI (a local user, with the admin role). */
export interface Actor {
  name: string;
  role: Role;
}

/** One change, as the audit log keeps it. */
export interface AuditEntry {
  actor: Actor;
  /** e.g. device.add, rollout.pause. */
  action: string;
  /** What it changed: a product key, PK/DN, a rollout id, an operator's name. */
  target: string;
  detail?: Record<string, unknown>;
}

export interface AuditRecord {
  id: number;
  at: number;
  actor: string;
  role: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

export async function writeAudit(db: Transaction<Database> | Kysely<Database>, e: AuditEntry, now = Date.now()): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({ at: now, actor: e.actor.name, role: e.actor.role, action: e.action, target: e.target, detail: JSON.stringify(e.detail ?? {}).slice(0, 4000) })
    .execute();
}

/** Newest first, `limit` rows before the id `before` (a cursor). */
export async function listAudit(db: Kysely<Database>, o: { limit: number; before?: number; target?: string }): Promise<{ entries: AuditRecord[]; next?: number }> {
  let q = db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(o.limit + 1);
  if (o.before !== undefined) q = q.where('id', '<', o.before);
  if (o.target !== undefined) q = q.where('target', '=', o.target);
  const rows = await q.execute();
  const entries = rows.slice(0, o.limit).map((r) => {
    let detail: Record<string, unknown> = {};
    try {
      detail = JSON.parse(r.detail) as Record<string, unknown>;
    } catch {
      /* written by us as JSON; an old or cut row shows empty */
    }
    return { id: Number(r.id), at: Number(r.at), actor: r.actor, role: r.role, action: r.action, target: r.target, detail };
  });
  return rows.length > o.limit ? { entries, next: entries[entries.length - 1].id } : { entries };
}
