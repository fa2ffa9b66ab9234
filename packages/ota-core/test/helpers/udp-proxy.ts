import { createSocket, type RemoteInfo } from 'node:dgram';

/**
 * A loopback UDP relay between one client and a server port, which can drop
 * datagrams on purpose: `blackout` drops everything, `drop(dir, n)` decides per packet.
 */
export async function startUdpProxy(initialTarget: number) {
  let targetPort = initialTarget;
  const sock = createSocket('udp4');
  let client: RemoteInfo | undefined;
  const state = {
    blackout: false,
    drop: (_dir: 'up' | 'down', _n: number): boolean => false,
    forwarded: 0,
    dropped: 0,
  };
  let n = 0;
  sock.on('message', (msg, rinfo) => {
    const fromServer = rinfo.port === targetPort;
    if (!fromServer) client = rinfo;
    const dir = fromServer ? 'down' : 'up';
    if (state.blackout || state.drop(dir, n++)) {
      state.dropped++;
      return;
    }
    state.forwarded++;
    if (fromServer) {
      if (client) sock.send(msg, client.port, client.address);
    } else {
      sock.send(msg, targetPort, '127.0.0.1');
    }
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  return {
    port: sock.address().port,
    state,
    /** Relay to another server port (a proxy started before the server it fronts). */
    retarget: (p: number) => void (targetPort = p),
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}
