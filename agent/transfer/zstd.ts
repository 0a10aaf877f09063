/**
 * zstd is the one native addon the agent uses. It is loaded on the first zstd chunk, not at
 * start-up, so the one-file bundle (dist/seedwire-agent.mjs) runs without it and only a zstd seed
 * is refused, with the reason, when the addon is not beside the bundle (see README, "Install on a
 * fleet").
 */
import { SeedwireError } from '../../shared/errors.js';

type ZstdModule = typeof import('zstd-napi');

let loading: Promise<ZstdModule> | undefined;

export function loadZstd(): Promise<ZstdModule> {
  loading ??= import('zstd-napi')
    .then((zstd) => {
      // A bundle whose addon failed to load once keeps an empty module: say so instead of a TypeError.
      if (typeof zstd.Compressor !== 'function') throw new Error('the zstd-napi addon did not load; restart the agent after adding it');
      return zstd;
    })
    .catch((error: unknown) => {
      loading = undefined;
      throw new SeedwireError(
        'SEEDWIRE_OP_REFUSED',
        `zstd compression is not available on this agent (${(error as Error).message.split('\n')[0]}); put seedwire-zstd.node beside seedwire-agent.mjs or seed with compression gzip or none`,
        { cause: error },
      );
    });
  return loading;
}
