/**
 * zstd is the one native addon the agent uses. It is loaded on the first zstd chunk, not at
 * start-up, so the one-file bundle (dist/seedwire-agent.mjs) runs without it and only a zstd seed
 * is refused, with the reason, when the addon is not beside the bundle (see README, "Install on a
 * fleet").
 */
import { SeedwireError } from '../../shared/errors.js';

/**
 * zstd-napi's binding (the addon itself, not the package's wrappers): `CCtx.compress(dst, src,
 * level)` and `DCtx.decompress(dst, src)` work in buffers of the caller's choosing, so a sender
 * compresses straight into its frame buffers and a receiver decompresses into a pooled buffer of
 * exactly the frame's raw length, failing when the result would not fit (the package's
 * Decompressor allocates whatever size a frame's own header declares).
 */
type ZstdModule = Pick<typeof import('zstd-napi/binding.js'), 'CCtx' | 'DCtx' | 'compressBound'>;

let loading: Promise<ZstdModule> | undefined;

export function loadZstd(): Promise<ZstdModule> {
  loading ??= import('zstd-napi/binding.js')
    .then((bindingModule) => {
      // binding.js is CommonJS that assigns the addon to module.exports: plain node puts it on `default` only.
      const binding = (bindingModule as { default?: Partial<typeof bindingModule> }).default ?? bindingModule;
      // A bundle whose addon failed to load once keeps an empty module: say so instead of a TypeError.
      if (typeof binding.CCtx !== 'function' || typeof binding.DCtx !== 'function' || typeof binding.compressBound !== 'function') {
        throw new Error('the zstd-napi addon did not load; restart the agent after adding it');
      }
      return { CCtx: binding.CCtx, DCtx: binding.DCtx, compressBound: binding.compressBound };
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
