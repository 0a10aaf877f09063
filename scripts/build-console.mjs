#!/usr/bin/env node
// Bundles the web console: server-stub/console/src/main.ts → <outdir>/app.js (minified, with a
// source map) and copies index.html and style.css next to it.
// Usage: node scripts/build-console.mjs [--outdir DIR]   (default: dist/console)
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const consoleDir = join(root, 'server-stub', 'console');

export async function buildConsole(outdir = join(root, 'dist', 'console')) {
  const out = resolve(outdir);
  await mkdir(out, { recursive: true });
  await build({
    entryPoints: [join(consoleDir, 'src', 'main.ts')],
    outfile: join(out, 'app.js'),
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2022'],
    minify: true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  await Promise.all(['index.html', 'style.css'].map((name) => copyFile(join(consoleDir, name), join(out, name))));
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { values } = parseArgs({ options: { outdir: { type: 'string' } }, strict: true });
    const out = await buildConsole(values.outdir);
    console.log(`console built into ${out}`);
  } catch (err) {
    console.error(`build-console: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
