/**
 * Which controller the agent dials next, when it is given several (README, "Several
 * controllers"). Pure: the link (link.ts) reports how each socket ended and asks where to go and
 * how long to wait; the waiting itself and the backoff's jitter stay in the link.
 *
 * - The first dial goes to the first URL.
 * - Whatever ends a socket (a lost link, a failed dial, a refusal) moves on to the next URL,
 *   wrapping round. There is no way back to an earlier URL while a later one holds the agent:
 *   the agent stays where it is welcomed, so a controller that comes back does not make the
 *   fleet flap.
 * - A Retry-After is remembered for the controller that sent it: that controller is not dialed
 *   again before it, while the others may be.
 * - A move frame (cluster mode) names the next controller, but only one of this list (select).
 */
import { SeedwireError } from '../../shared/errors.js';

export class ControllerList {
  private index = 0;
  /** Per URL: the earliest time (`now()` ms) it may be dialed again. */
  private readonly notBefore: number[];

  constructor(
    readonly urls: readonly string[],
    private readonly now: () => number = () => performance.now(),
  ) {
    if (urls.length === 0) throw new SeedwireError('SEEDWIRE_CONFIG', 'config error at controller: must list at least one controller URL', { details: { path: 'controller' } });
    this.notBefore = urls.map(() => 0);
  }

  /** The URL of the current (or next) dial. */
  get current(): string {
    return this.urls[this.index]!;
  }

  /** Its position in the list (0-based, as in the config's key path `controller.N`). */
  get position(): number {
    return this.index;
  }

  /**
   * The position of `url` in the list, compared after normalising both (scheme and host case, a
   * default port, a trailing slash); -1 when it is not one of them.
   */
  indexOf(url: string): number {
    const wanted = normaliseControllerUrl(url);
    if (wanted === null) return -1;
    return this.urls.findIndex((candidate) => normaliseControllerUrl(candidate) === wanted);
  }

  /** The next dial goes to the URL at `index` (a move frame's controller). */
  select(index: number): void {
    if (index < 0 || index >= this.urls.length) throw new SeedwireError('SEEDWIRE_INTERNAL', `no controller at position ${index}`);
    this.index = index;
  }

  /** The current controller asked to be dialed again no sooner than `delayMs` from now. */
  holdOff(delayMs: number): void {
    this.notBefore[this.index] = Math.max(this.notBefore[this.index]!, this.now() + delayMs);
  }

  /** The socket to the current controller ended: the next dial goes to the next URL. */
  advance(): void {
    this.index = (this.index + 1) % this.urls.length;
  }

  /** How long before the current URL may be dialed (0: now). */
  heldFor(): number {
    return Math.max(0, Math.ceil(this.notBefore[this.index]! - this.now()));
  }
}

/** A controller URL in one spelling (WHATWG URL: lower-case scheme and host, no default port), or null when it is not a URL. */
export function normaliseControllerUrl(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.username !== '' || url.password !== '') return null;
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
  return `${url.protocol}//${url.host}${path}${url.search}`;
}
