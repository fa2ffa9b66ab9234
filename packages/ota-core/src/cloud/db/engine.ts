// The two database engines behind one Kysely handle: SQLite (better-sqlite3, embedded, the
// default: DATA/otadiff.db) and PostgreSQL (pg, `--db postgres://…`). Same schema, same queries.
//
// SQLite is opened in WAL mode with a busy timeout so `serve` and CLI commands in other processes
// share one file (a statement that finds it locked waits asynchronously, not blocking the event
// loop); every transaction is BEGIN IMMEDIATE (it takes the write lock up front), so two
// processes never both read, then both try to write, and fail. PostgreSQL transactions are plain
// BEGIN; who pushes which device is decided with row locks (SKIP LOCKED, push-queue.ts).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type QueryResult,
  type Transaction,
} from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Engine = 'sqlite' | 'postgres';

export class DatabaseError extends Error {
  override name = 'DatabaseError';
}

export interface OpenOptions {
  /** postgres://user:pass@host:port/db, or a path of an SQLite file. */
  location: string;
  /**
   * sync: every commit reaches the disk before it returns (CLI commands: a device secret is printed
   * only once it is safe). fast: SQLite's synchronous=NORMAL in WAL mode and PostgreSQL's
   * synchronous_commit=off: a commit survives a crash of this process, and at worst the last
   * fraction of a second is lost if the machine itself loses power (status updates of `serve`).
   */
  durability?: 'sync' | 'fast';
  /** Connections in the PostgreSQL pool (default 8). */
  poolSize?: number;
  /** How long SQLite waits for another process's write lock (ms, default 10000). */
  busyTimeoutMs?: number;
}

export interface DatabaseHandle {
  readonly engine: Engine;
  readonly db: Kysely<Database>;
  /** Where it is, without a password. */
  readonly where: string;
  /** One write transaction: BEGIN IMMEDIATE on SQLite, BEGIN on PostgreSQL. */
  write<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export const isPostgresUrl = (s: string): boolean => /^postgres(ql)?:\/\//i.test(s);

/** A postgres:// URL with its password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

/**
 * better-sqlite3 behind Kysely: one connection (a mutex hands it out), every transaction BEGIN
 * IMMEDIATE, prepared statements kept. SQLite's own busy wait blocks the thread, so it is kept short
 * and a statement that still finds the database locked (another process, or another connection of
 * this one, holds the write lock) is retried after an asynchronous pause until the busy timeout.
 */
class SqliteConnection implements DatabaseConnection {
  private readonly cache = new Map<string, BetterSqlite3.Statement>();
  constructor(
    private readonly raw: BetterSqlite3.Database,
    private readonly busyTimeoutMs: number,
  ) {}

  private statement(text: string): BetterSqlite3.Statement {
    let st = this.cache.get(text);
    if (st === undefined) {
      st = this.raw.prepare(text);
      // Bulk inserts have a text per row count; keep the cache to the steady queries.
      if (this.cache.size >= 256) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(text, st);
    }
    return st;
  }

  private run<R>(q: CompiledQuery): QueryResult<R> {
    const st = this.statement(q.sql);
    const params = q.parameters as unknown[];
    if (st.reader) return { rows: st.all(params) as R[] };
    const { changes, lastInsertRowid } = st.run(params);
    return { rows: [], numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid) };
  }

  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    const deadline = Date.now() + this.busyTimeoutMs;
    for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
      try {
        return this.run<R>(q);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if ((code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') || Date.now() >= deadline) throw e;
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  async *streamQuery<R>(q: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    yield await this.executeQuery<R>(q);
  }
}

class SqliteDriver implements Driver {
  private readonly connection: SqliteConnection;
  private queue: Promise<void> = Promise.resolve();
  private release: (() => void) | undefined;

  constructor(
    private readonly raw: BetterSqlite3.Database,
    busyTimeoutMs: number,
  ) {
    this.connection = new SqliteConnection(raw, busyTimeoutMs);
  }
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    const prev = this.queue;
    let release!: () => void;
    this.queue = new Promise<void>((r) => (release = r));
    await prev;
    this.release = release;
    return this.connection;
  }
  async beginTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw('begin immediate'));
  }
  async commitTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw('commit'));
  }
  async rollbackTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw('rollback'));
  }
  async releaseConnection(): Promise<void> {
    const r = this.release;
    this.release = undefined;
    r?.();
  }
  async destroy(): Promise<void> {
    this.raw.close();
  }
}

class SqliteDialect implements Dialect {
  constructor(
    private readonly raw: BetterSqlite3.Database,
    private readonly busyTimeoutMs: number,
  ) {}
  createAdapter() {
    return new SqliteAdapter();
  }
  createDriver(): Driver {
    return new SqliteDriver(this.raw, this.busyTimeoutMs);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new SqliteIntrospector(db);
  }
  createQueryCompiler() {
    return new SqliteQueryCompiler();
  }
}

function openSqlite(path: string, o: OpenOptions): DatabaseHandle {
  mkdirSync(dirname(path), { recursive: true });
  let raw: BetterSqlite3.Database;
  try {
    // A short wait in SQLite itself (it blocks the thread); longer waits are asynchronous (SqliteConnection).
    raw = new BetterSqlite3(path, { timeout: 20 });
    raw.pragma('journal_mode = WAL');
    raw.pragma(`synchronous = ${o.durability === 'fast' ? 'NORMAL' : 'FULL'}`);
    raw.pragma('foreign_keys = ON');
  } catch (e) {
    throw new DatabaseError(`cannot open the SQLite database ${path}: ${(e as Error).message}`);
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect(raw, o.busyTimeoutMs ?? 10_000) });
  return {
    engine: 'sqlite',
    db,
    where: path,
    write: (fn) => db.transaction().execute(fn),
    close: () => db.destroy(),
  };
}

// int8 (COUNT, BIGINT columns: millisecond times) as JS numbers; every value we store fits 2^53.
const INT8_OID = 20;
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

async function openPostgres(url: string, o: OpenOptions): Promise<DatabaseHandle> {
  const pool = new pg.Pool({
    connectionString: url,
    max: o.poolSize ?? 8,
    types: pgTypes as pg.CustomTypesConfig,
    connectionTimeoutMillis: 10_000,
    ...(o.durability === 'fast' ? { options: '-c synchronous_commit=off' } : {}),
  });
  // An idle client losing its server must not crash the process: the next query reports it.
  pool.on('error', () => {});
  try {
    const c = await pool.connect();
    c.release();
  } catch (e) {
    await pool.end().catch(() => {});
    throw new DatabaseError(`cannot connect to PostgreSQL at ${redactUrl(url)}: ${(e as Error).message}`);
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    engine: 'postgres',
    db,
    where: redactUrl(url),
    write: (fn) => db.transaction().execute(fn),
    close: () => db.destroy(),
  };
}

export async function openDatabaseEngine(o: OpenOptions): Promise<DatabaseHandle> {
  return isPostgresUrl(o.location) ? openPostgres(o.location, o) : openSqlite(o.location, o);
}
