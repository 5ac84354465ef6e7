// jax-js's wasm backend has a worker pool that splits each kernel over threads (its
// src/backend/wasm/parallel.ts), but it switches on only where the web `Worker` and
// `SharedArrayBuffer` exist, which Node lacks (`Worker` there is worker_threads'). This
// module gives Node a web-style Worker over worker_threads, enough for that pool, before
// jax-js is first imported (the backend decides at import). Opt in with
// SELFTOK_THREADS=N (N ≥ 2); unset or 1 keeps jax-js's single-threaded path.
//
// The pool starts its workers from a Blob URL; a worker_threads Worker cannot load one, so
// the shim starts a bootstrap that waits for the blob's text (read asynchronously here) and
// queues the messages posted before it arrives.
import { Worker as NodeWorker } from 'node:worker_threads';
import { resolveObjectURL } from 'node:buffer';

const BOOTSTRAP = `
const { parentPort } = require('node:worker_threads');
globalThis.self = globalThis;
globalThis.postMessage = (m) => parentPort.postMessage(m);
let ready = false;
const early = [];
parentPort.on('message', (m) => {
  if (!ready) {
    if (m && typeof m.__workerSource === 'string') {
      (0, eval)(m.__workerSource);
      ready = true;
      for (const e of early.splice(0)) self.onmessage({ data: e });
    } else early.push(m);
    return;
  }
  self.onmessage({ data: m });
});
`;

class NodeWebWorker {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: { message: string }) => void) | null = null;
  private worker: NodeWorker;
  private queue: unknown[] | null = [];
  constructor(url: string | URL) {
    this.worker = new NodeWorker(BOOTSTRAP, { eval: true });
    this.worker.unref();
    this.worker.on('message', (data) => this.onmessage?.({ data }));
    this.worker.on('error', (e) => this.onerror?.({ message: e.message }));
    const blob = resolveObjectURL(String(url));
    if (!blob) throw new Error(`worker source ${url} not found`);
    void blob.text().then((src) => {
      this.worker.postMessage({ __workerSource: src });
      for (const m of this.queue!) this.worker.postMessage(m);
      this.queue = null;
    });
  }
  postMessage(m: unknown): void {
    if (this.queue) this.queue.push(m);
    else this.worker.postMessage(m);
  }
  terminate(): void {
    void this.worker.terminate();
  }
}

export const WASM_THREADS = Math.max(1, Number(process.env.SELFTOK_THREADS ?? 1) | 0);

const g = globalThis as { Worker?: unknown; navigator?: { hardwareConcurrency?: number; userAgent?: string } };
if (WASM_THREADS > 1 && typeof g.Worker === 'undefined' && typeof process !== 'undefined' && process.versions?.node) {
  g.Worker = NodeWebWorker;
  const nav = g.navigator ?? { userAgent: 'node' };
  Object.defineProperty(globalThis, 'navigator', { value: { ...nav, hardwareConcurrency: WASM_THREADS }, configurable: true, writable: true });
}
