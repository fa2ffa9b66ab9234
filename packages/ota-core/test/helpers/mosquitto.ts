// A throwaway mosquitto on loopback: a free port, a temp config, killed by pid.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
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

/** With `users`, only they may connect (a password file made by mosquitto_passwd beside the binary). */
export async function startMosquitto(bin: string, o: { port?: number; users?: Record<string, string> } = {}): Promise<Mosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-mosq-'));
  const port = o.port ?? (await freePort());
  const conf = join(dir, 'mosquitto.conf');
  let auth = 'allow_anonymous true\n';
  if (o.users !== undefined) {
    const passwd = join(dir, 'passwd');
    const tool = [join(bin, '..', 'mosquitto_passwd'), '/usr/bin/mosquitto_passwd'].find((p) => existsSync(p)) ?? 'mosquitto_passwd';
    for (const [i, [user, password]] of Object.entries(o.users).entries()) execFileSync(tool, [...(i === 0 ? ['-c'] : []), '-b', passwd, user, password]);
    // Started as root, mosquitto drops to its own user, which must be able to read the file.
    await chmod(dir, 0o755);
    await chmod(passwd, 0o644);
    auth = `allow_anonymous false\npassword_file ${passwd}\n`;
  }
  await writeFile(conf, `listener ${port} 127.0.0.1\n${auth}persistence false\n`);
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
