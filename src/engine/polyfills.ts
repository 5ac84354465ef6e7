// jax-js 0.1.25 parses einsum subscripts with ES2025 iterator helpers
// (`str.matchAll(re).map(...).filter(...)`), which Node 20 does not have.
// dotProductAttention goes through einsum, so without these every attention
// layer throws "matchAll(...).map is not a function" on Node 20.
const iteratorProto = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));

function define(name: string, value: (...args: never[]) => unknown): void {
  if (typeof iteratorProto[name] !== 'function') {
    Object.defineProperty(iteratorProto, name, { configurable: true, writable: true, value });
  }
}

define('map', function* (this: Iterator<unknown>, fn: (v: unknown, i: number) => unknown) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) yield fn(r.value, i++);
});
define('filter', function* (this: Iterator<unknown>, fn: (v: unknown, i: number) => boolean) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) if (fn(r.value, i++)) yield r.value;
});
define('toArray', function (this: Iterator<unknown>) {
  const out: unknown[] = [];
  for (let r = this.next(); !r.done; r = this.next()) out.push(r.value);
  return out;
});

// jax-js's synchronous wasm path (Node has no web Worker, so every kernel takes it)
// builds a new WebAssembly.Instance for each kernel dispatch. A compiled jit step
// dispatches ~1000 kernels, and instantiation cost ~40% of a tiny model's forward pass
// (measured: 320 → 185 ms). A kernel instance has no state of its own besides the
// imported memory, so we reuse one instance per (module, memory).
const OriginalInstance = WebAssembly.Instance;
const instances = new WeakMap<WebAssembly.Module, { memory: unknown; instance: WebAssembly.Instance }>();

const CachedInstance = function (module: WebAssembly.Module, imports?: WebAssembly.Imports) {
  const env = imports?.env as Record<string, unknown> | undefined;
  if (env && Object.keys(imports!).length === 1 && Object.keys(env).length === 1 && env.memory instanceof WebAssembly.Memory) {
    const hit = instances.get(module);
    if (hit && hit.memory === env.memory) return hit.instance;
    const instance = new OriginalInstance(module, imports);
    instances.set(module, { memory: env.memory, instance });
    return instance;
  }
  return new OriginalInstance(module, imports);
} as unknown as typeof WebAssembly.Instance;
CachedInstance.prototype = OriginalInstance.prototype;
(WebAssembly as { Instance: typeof WebAssembly.Instance }).Instance = CachedInstance;
