type Fn = (...args: any[]) => void;

/** Emitter is the smallest event hub: on returns an unsubscribe function. */
export class Emitter<E extends Record<string, Fn>> {
  private fns: { [K in keyof E]?: Set<E[K]> } = {};

  on<K extends keyof E>(ev: K, fn: E[K]): () => void {
    (this.fns[ev] ??= new Set()).add(fn);
    return () => this.off(ev, fn);
  }

  off<K extends keyof E>(ev: K, fn: E[K]): void {
    this.fns[ev]?.delete(fn);
  }

  protected emit<K extends keyof E>(ev: K, ...args: Parameters<E[K]>): void {
    for (const fn of this.fns[ev] ?? []) {
      try {
        fn(...args);
      } catch (e) {
        // A listener's bug must not break the connection or the clock.
        setTimeout(() => { throw e; });
      }
    }
  }
}
