/**
 * A transfer op's progress reports as the seed machine reads them: at most one per
 * PROGRESS_INTERVAL_MS (the stream moves far faster than anyone watches), plus a last one forced
 * at the end.
 */
import { LIMITS } from '../../shared/limits.js';
import type { OpProgressOf } from '../../shared/ops.js';
import type { ReceiveProgress } from './receive.js';

const PROGRESS_INTERVAL_MS = LIMITS.progressIntervalMs;

/** `fn` at most once per interval; `force` runs it regardless. */
export function throttled(fn: (now: number) => void, intervalMs = PROGRESS_INTERVAL_MS): (force?: boolean) => void {
  let last = 0;
  return (force = false) => {
    const now = performance.now();
    if (!force && now - last < intervalMs) return;
    last = now;
    fn(now);
  };
}

/** A sender's progress: `{ sent }`, the stream offset sent so far. */
export function reportSent(report: (data: OpProgressOf<'seed-send'>) => void, from: number): { readonly sent: number; update(sent: number): void; flush(): void } {
  let sent = from;
  const emit = throttled(() => report({ sent }));
  return {
    get sent() {
      return sent;
    },
    update(offset) {
      sent = offset;
      emit();
    },
    flush: () => emit(true),
  };
}

/**
 * A receiver's progress: `{ ready, offset }` once it knows where the sender starts, then
 * `{ received, committed, bytesPerSec, window }` (the rate over this attempt's bytes; the credit
 * window, for measuring it against the bandwidth-delay product).
 */
export function reportReceived(report: (data: OpProgressOf<'seed-receive'>) => void): { start(offset: number): void; update(progress: ReceiveProgress): void; flush(): void } {
  const started = performance.now();
  let startOffset = 0;
  let latest: ReceiveProgress = { received: 0, committed: 0 };
  const emit = throttled((now) => {
    const seconds = (now - started) / 1000;
    const bytesPerSec = seconds > 0 ? Math.round((latest.received - startOffset) / seconds) : undefined;
    report({
      committed: latest.committed,
      received: latest.received,
      ...(bytesPerSec === undefined ? {} : { bytesPerSec }),
      ...(latest.window === undefined ? {} : { window: latest.window }),
    });
  });
  return {
    start(offset) {
      startOffset = offset;
      report({ ready: true, offset });
    },
    update(progress) {
      latest = progress;
      emit();
    },
    flush: () => emit(true),
  };
}
