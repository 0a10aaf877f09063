#!/usr/bin/env node
// Bundles the agent into one file, dist/seedwire-agent.mjs, that runs with plain `node` and no
// node_modules. The only native code the agent can use is zstd (zstd-napi); its Node-API addon is
// copied beside the bundle as seedwire-zstd.node and loaded on the first zstd seed, so the bundle
// alone still runs (seeds use gzip or none; zstd is refused with the reason). bufferutil is left
// out: ws falls back to its pure-JS masking.
// Usage: node scripts/build-dist.mjs [--outdir DIR]   (default: dist)
import { chmod, copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ZSTD_ADDON = 'seedwire-zstd.node';
const BLAKE3_ADDON = 'seedwire-blake3.node';

/** zstd-napi's binding.js picks a build dir at run time; in the bundle it loads the copy beside it. */
const zstdAddonBeside = {
  name: 'zstd-addon-beside',
  setup(b) {
    b.onLoad({ filter: /zstd-napi[\\/]binding\.js$/ }, () => ({
      contents: `module.exports = require('./${ZSTD_ADDON}');`,
      loader: 'js',
    }));
    b.onResolve({ filter: new RegExp(`^\\./${ZSTD_ADDON.replace('.', '\\.')}$`) }, (args) => ({ path: args.path, external: true }));
  },
};

/** shared/version.ts reads package.json at run time; the bundle has none beside it, so inline it. */
const inlineVersion = {
  name: 'inline-version',
  setup(b) {
    b.onLoad({ filter: /shared[\\/]version\.ts$/ }, async () => {
      const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
      return { contents: `export const VERSION = ${JSON.stringify(version)};`, loader: 'ts' };
    });
  },
};

export async function buildAgentBundle(outdir = join(root, 'dist')) {
  const out = resolve(outdir);
  await mkdir(out, { recursive: true });
  const outfile = join(out, 'seedwire-agent.mjs');
  await build({
    entryPoints: [join(root, 'agent', 'main.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: ['node20.15'],
    // ws tries these optional addons inside try/catch; leaving them out selects its JS fallback.
    external: ['bufferutil', 'utf-8-validate'],
    plugins: [zstdAddonBeside, inlineVersion],
    // CommonJS dependencies call require(); an ES module has none, so give them one rooted here.
    banner: { js: "import { createRequire as __seedwireCreateRequire } from 'node:module';\nconst require = __seedwireCreateRequire(import.meta.url);" },
    legalComments: 'none',
    minify: false,
    logLevel: 'warning',
  });
  await chmod(outfile, 0o755);
  const requireHere = createRequire(join(root, 'package.json'));
  const addon = requireHere.resolve('zstd-napi/build/Release/binding.node');
  await copyFile(addon, join(out, ZSTD_ADDON));
  // BLAKE3 (agent/transfer/content-hash.ts loads it from beside the bundle): @napi-rs/blake-hash's
  // prebuilt addon for this platform, installed by npm as an optional dependency.
  const platformPackage = `@napi-rs/blake-hash-${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}`;
  let blake3 = null;
  try {
    const pkgPath = requireHere.resolve(`${platformPackage}/package.json`);
    const { main } = JSON.parse(await readFile(pkgPath, 'utf8'));
    await copyFile(join(dirname(pkgPath), main), join(out, BLAKE3_ADDON));
    blake3 = join(out, BLAKE3_ADDON);
  } catch (err) {
    console.warn(`build-dist: no BLAKE3 addon for this platform (${platformPackage}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}); agents from this bundle hash with SHA-256`);
  }
  return { outfile, addon: join(out, ZSTD_ADDON), blake3 };
}

function mib(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { values } = parseArgs({ options: { outdir: { type: 'string' } }, strict: true });
    const { outfile, addon, blake3 } = await buildAgentBundle(values.outdir);
    console.log(`${outfile}  ${mib((await stat(outfile)).size)}  (runs with plain node, no node_modules)`);
    console.log(`${addon}  ${mib((await stat(addon)).size)}  (optional: zstd compression; keep it beside the bundle)`);
    if (blake3) console.log(`${blake3}  ${mib((await stat(blake3)).size)}  (optional: BLAKE3 content hashes, faster seeds; keep it beside the bundle)`);
  } catch (err) {
    console.error(`build-dist: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
