import { setImmediate as tick } from 'node:timers/promises';

const NETWORK = new Set(['TCPServerWrap', 'TCPSocketWrap', 'TCPWrap', 'UDPWrap', 'TLSWrap', 'GetAddrInfoReqWrap', 'TCPConnectWrap']);

const networkHandles = (): string[] => process.getActiveResourcesInfo().filter((r) => NETWORK.has(r));

let baseline: string[] = [];

/**
 * Call in beforeAll, after imports: libraries may own sockets from import time
 * (the coap package creates its two global agents' UDP sockets on load).
 */
export function recordNetworkBaseline(): void {
  baseline = networkHandles();
}

/** Network handles (sockets, servers) opened since the baseline and still open. */
export async function openNetworkHandles(): Promise<string[]> {
  const extra = (): string[] => {
    const left = [...baseline];
    return networkHandles().filter((h) => {
      const i = left.indexOf(h);
      if (i < 0) return true;
      left.splice(i, 1);
      return false;
    });
  };
  // Closing sockets finish on later turns of the event loop.
  for (let i = 0; i < 20 && extra().length > 0; i++) {
    await tick();
    await new Promise((r) => setTimeout(r, 5));
  }
  return extra();
}
