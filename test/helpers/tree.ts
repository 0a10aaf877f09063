/** Generated datadirs for seed tests that need no real MariaDB: their digest, and a "MySQL" that is a state file. */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** SHA-256 of every file under `root`, by its path relative to `root`: equal trees give equal maps. */
export function digestTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(root, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(root);
  return out;
}

/** The agent's mysql service commands for a "server" that runs while `stateFile` exists. */
export function serviceCommands(stateFile: string): Record<string, string> {
  return { startCommand: `touch ${stateFile}`, stopCommand: `rm -f ${stateFile}`, statusCommand: `test -f ${stateFile}` };
}
