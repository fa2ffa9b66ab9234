// A small TCP load balancer for the fleet bench: the file servers of several cloud workers behind
// one address (what a deployment puts in front of them), round-robin, skipping a backend that
// refuses the connection (a killed worker) so downloads resume on another one.

import { createConnection, createServer, type Socket } from 'node:net';

export interface Backend {
  host: string;
  port: number;
}

export interface Balancer {
  url: string;
  close(): Promise<void>;
}

export async function startBalancer(backends: Backend[]): Promise<Balancer> {
  let next = 0;
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = createServer((client) => {
    track(client);
    client.pause();
    const tryBackend = (left: number): void => {
      const b = backends[next++ % backends.length];
      const up = createConnection(b);
      track(up);
      let connected = false;
      up.once('connect', () => {
        connected = true;
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        client.pipe(up).pipe(client);
        client.resume();
      });
      up.once('error', () => {
        if (connected) return;
        if (left > 1) tryBackend(left - 1);
        else client.destroy();
      });
    };
    tryBackend(backends.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
