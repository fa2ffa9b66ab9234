// A throwaway mosquitto on loopback: a free port, a temp config, killed by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * The mosquitto binary (Debian installs it in /usr/sbin, often not on a user's PATH).
 * OTADIFF_MOSQUITTO names it explicitly (an empty or missing path means "not installed").
 */
export function findMosquitto(): string | undefined {
  const forced = process.env.OTADIFF_MOSQUITTO;
  if (forced !== undefined) return forced !== '' && existsSync(forced) ? forced : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/opt/homebrew/sbin'];
  return dirs.map((d) => join(d, 'mosquitto')).find((p) => p.startsWith('/') && existsSync(p));
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

export interface Mosquitto {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startMosquitto(bin: string, o: { port?: number } = {}): Promise<Mosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-mosq-'));
  const port = o.port ?? (await freePort());
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    if (await canConnect(port)) break;
    if (child.exitCode !== null || i > 100) {
      await stop();
      throw new Error(`mosquitto did not start on port ${port}: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `mqtt://127.0.0.1:${port}`, port, close: stop };
}
