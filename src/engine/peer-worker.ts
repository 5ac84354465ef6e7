// The entry of a gradient worker thread (data-parallel.ts): jax-js on wasm in this thread, then
// the module named by the first message provides the handler for every later one.
import { parentPort } from 'node:worker_threads';
import { setupDevice } from '../node/device.ts';
import type { PeerHandler } from './data-parallel.ts';

type Incoming = { id: number; type: 'init'; module: string; init: unknown } | { id: number; type: 'step'; msg: unknown };

if (!parentPort) throw new Error('peer-worker.ts runs only as a worker thread');
const port = parentPort;
let handler: PeerHandler | null = null;
// one message at a time: a step's reply must go before the next step's work starts
let queue: Promise<void> = Promise.resolve();

port.on('message', (m: Incoming) => {
  queue = queue.then(async () => {
    try {
      if (m.type === 'init') {
        await setupDevice('wasm');
        const mod = (await import(m.module)) as { createPeer?: (init: unknown) => Promise<PeerHandler> };
        if (typeof mod.createPeer !== 'function') throw new Error(`${m.module} has no createPeer`);
        handler = await mod.createPeer(m.init);
        port.postMessage({ id: m.id, ok: true, reply: null });
      } else {
        if (!handler) throw new Error('step before init');
        const { reply, transfer } = await handler(m.msg);
        port.postMessage({ id: m.id, ok: true, reply }, transfer ?? []);
      }
    } catch (e) {
      port.postMessage({ id: m.id, ok: false, error: e instanceof Error ? (process.env.SELFTOK_DEBUG ? String(e.stack) : e.message) : String(e) });
    }
  });
});
