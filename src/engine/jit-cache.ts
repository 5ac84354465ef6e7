// Compiled functions of a model, built on first use and kept by name (one compile per
// function; jax-js retraces a cached function by itself when argument shapes change).
import type { OwnedFunction } from '@jax-js/jax';

export class JitCache {
  private fns = new Map<string, OwnedFunction<(...args: any[]) => any>>();

  get<F extends (...args: any[]) => any>(name: string, make: () => OwnedFunction<F>): OwnedFunction<F> {
    let f = this.fns.get(name);
    if (!f) {
      f = make() as OwnedFunction<(...args: any[]) => any>;
      this.fns.set(name, f);
    }
    return f as OwnedFunction<F>;
  }

  /** Free every compiled function (after training changes shapes, or when done). */
  dispose(): void {
    for (const f of this.fns.values()) f.dispose();
    this.fns.clear();
  }
}
