/** Waiting for conditions without sleeping to synchronise. */

/** A list of values that can be awaited: `waitFor(pred)` resolves as soon as a matching value is pushed (or already was). */
export class Waitable<T> {
  readonly items: T[] = [];
  private waiters: Array<{ pred: (item: T) => boolean; resolve: (item: T) => void }> = [];

  push(item: T): void {
    this.items.push(item);
    for (const waiter of [...this.waiters]) {
      if (waiter.pred(item)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(item);
      }
    }
  }

  waitFor(pred: (item: T) => boolean, options: { timeoutMs?: number; what?: string; fromIndex?: number } = {}): Promise<T> {
    const found = this.items.slice(options.fromIndex ?? 0).find(pred);
    if (found !== undefined) return Promise.resolve(found);
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      const waiter = {
        pred,
        resolve: (item: T) => {
          clearTimeout(timer);
          resolve(item);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a matching item'}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

/** Polls `condition` (only for conditions with no event to wait on, such as a pid's existence). */
export async function waitFor(condition: () => boolean | Promise<boolean>, options: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? 'condition'}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}
