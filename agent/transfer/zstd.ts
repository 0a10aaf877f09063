/**
 * zstd is the one native addon the agent uses. It is loaded on the first zstd chunk, not at
 * start-up, so the one-file bundle (dist/seedwire-agent.mjs) runs without it and only a zstd seed
 * is refused, with the reason, when the addon is not beside the bundle (see README, "Install on a
 * fleet").
 */
import { SeedwireError } from '../../shared/errors.js';

/**
 * zstd-napi's compressor, and its binding's decompression context: `DCtx.decompress(dst, src)`
 * decompresses into a buffer of the receiver's choosing and fails when the result would not fit,
 * where the package's Decompressor allocates whatever size a frame's header declares.
 */
type ZstdModule = Pick<typeof import('zstd-napi'), 'Compressor'> & Pick<typeof import('zstd-napi/binding.js'), 'DCtx'>;

let loading: Promise<ZstdModule> | undefined;

export function loadZstd(): Promise<ZstdModule> {
  loading ??= Promise.all([import('zstd-napi'), import('zstd-napi/binding.js')])
    .then(([zstd, bindingModule]) => {
      // binding.js is CommonJS that assigns the addon to module.exports: plain node puts it on `default` only.
      const binding = (bindingModule as { default?: Partial<typeof bindingModule> }).default ?? bindingModule;
      // A bundle whose addon failed to load once keeps an empty module: say so instead of a TypeError.
      if (typeof zstd.Compressor !== 'function' || typeof binding.DCtx !== 'function') throw new Error('the zstd-napi addon did not load; restart the agent after adding it');
      return { Compressor: zstd.Compressor, DCtx: binding.DCtx };
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
