// The database engines a contract test runs on: SQLite always; PostgreSQL when a server answers at
// OTADIFF_TEST_PG (default postgres://otadiff:otadiff@127.0.0.1:5432/otadiff). With
// OTADIFF_REQUIRE_PG=1 (set by .ci/run) a missing server fails the tests instead of skipping them.
// Each test context gets a fresh temp data directory and, on PostgreSQL, a fresh database.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CloudStore, type CloudStoreOptions } from '../../src/cloud/cloud-store.js';

export type EngineName = 'sqlite' | 'postgres';

export const PG_ADMIN_URL = process.env.OTADIFF_TEST_PG ?? 'postgres://otadiff:otadiff@127.0.0.1:5432/otadiff';
export const PG_REQUIRED = process.env.OTADIFF_REQUIRE_PG === '1';

async function pgReachable(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('select 1');
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

const pgProblem = await pgReachable();
if (pgProblem !== undefined) {
  const msg = `PostgreSQL at ${PG_ADMIN_URL.replace(/:[^:@/]*@/, ':***@')} is not reachable (${pgProblem})`;
  if (PG_REQUIRED) throw new Error(`${msg}, and OTADIFF_REQUIRE_PG=1 asks for it`);
  console.warn(`${msg}: the PostgreSQL half of the contract tests is SKIPPED (set OTADIFF_TEST_PG, or run .ci/run)`);
}

/** The engines to run on (PostgreSQL only when reachable). */
export const ENGINES: EngineName[] = pgProblem === undefined ? ['sqlite', 'postgres'] : ['sqlite'];
export const HAVE_PG = pgProblem === undefined;

/** A fresh empty PostgreSQL database; `drop()` removes it. */
export async function freshPgDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `otadiff_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const a = new pg.Client({ connectionString: PG_ADMIN_URL });
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

export interface EngineContext {
  engine: EngineName;
  dir: string;
  dataDir: string;
  /** The --db URL on PostgreSQL, undefined on SQLite. */
  db: string | undefined;
  open(opts?: CloudStoreOptions): Promise<CloudStore>;
  close(): Promise<void>;
}

export async function engineContext(engine: EngineName): Promise<EngineContext> {
  const dir = await mkdtemp(join(tmpdir(), `ota-${engine}-`));
  const pgdb = engine === 'postgres' ? await freshPgDatabase() : undefined;
  const stores: CloudStore[] = [];
  const dataDir = join(dir, 'data');
  return {
    engine,
    dir,
    dataDir,
    db: pgdb?.url,
    async open(opts = {}) {
      const s = await CloudStore.open(dataDir, { db: pgdb?.url, ...opts });
      stores.push(s);
      return s;
    },
    async close() {
      for (const s of stores) await s.close().catch(() => {});
      await pgdb?.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
