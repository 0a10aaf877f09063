/**
 * The program the agent writes to `node -`'s stdin to start its spawner: child.ts's function as
 * it was compiled into whatever is running (sources, dist/ or the one-file bundle), called with
 * the settings. No file is looked up, so the bundle needs nothing beside it for this.
 */
import { spawnerMain, type SpawnerSettings } from './child.js';

/**
 * esbuild with `keepNames` (tsx, vitest) wraps nested functions in `__name(fn, "name")`, a helper
 * defined outside the function; the program defines its own so the text runs anywhere.
 */
const HELPERS = 'var __name = (fn, _name) => fn;';

export function spawnerProgram(settings: SpawnerSettings): string {
  return `'use strict';\n${HELPERS}\n(${spawnerMain.toString()})(require, ${JSON.stringify(settings)});\n`;
}
