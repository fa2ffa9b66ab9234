import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

/**
 * A loopback UDP relay in front of a server port, which can drop datagrams on purpose:
 * `blackout` drops everything, `drop(dir, n)` decides per packet. Each client gets its
 * own upstream socket (like a NAT), so several clients (a device's notice link and its
 * download) can share one relay.
 */
export async function startUdpProxy(initialTarget: number) {
  let targetPort = initialTarget;
  const sock = createSocket('udp4');
  const upstreams = new Map<string, Socket>();
  const state = {
    blackout: false,
    drop: (_dir: 'up' | 'down', _n: number): boolean => false,
    forwarded: 0,
    dropped: 0,
  };
  let n = 0;
  const pass = (dir: 'up' | 'down'): boolean => {
    if (state.blackout || state.drop(dir, n++)) {
      state.dropped++;
      return false;
    }
    state.forwarded++;
    return true;
  };
  const upstreamFor = async (client: RemoteInfo): Promise<Socket> => {
    const k = `${client.address}:${client.port}`;
    let up = upstreams.get(k);
    if (up === undefined) {
      const s = createSocket('udp4');
      upstreams.set(k, s);
      s.on('message', (msg) => {
        if (pass('down')) sock.send(msg, client.port, client.address);
      });
      await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
      up = s;
    }
    return up;
  };
  sock.on('message', (msg, rinfo) => {
    if (!pass('up')) return;
    void upstreamFor(rinfo).then((up) => up.send(msg, targetPort, '127.0.0.1'));
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  return {
    port: sock.address().port,
    state,
    /** Relay to another server port (a proxy started before the server it fronts). */
    retarget: (p: number) => void (targetPort = p),
    close: async () => {
      await Promise.all([...upstreams.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      await new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}
