/** The streams a command writes to and reads from; main.ts passes the process's own. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Ends a wait early on Ctrl-C; a command that handles it itself registers here. */
  onInterrupt(handler: () => void): () => void;
  /** For relative times in tables. */
  now(): number;
}

export function printJson(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
