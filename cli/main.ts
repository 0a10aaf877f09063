#!/usr/bin/env node
/**
 * `seedwire`: the command line for people and scripts (README "Command line"). This file owns
 * the process: environment, streams, Ctrl-C, the exit code.
 */
import type { Io } from './io.js';
import { runCli } from './program.js';

const interruptHandlers = new Set<() => void>();

const io: Io = {
  stdout: process.stdout,
  stderr: process.stderr,
  // Only touched for the Ctrl-C question: opening stdin early would change how a terminal behaves.
  get stdin() {
    return process.stdin;
  },
  onInterrupt(handler) {
    interruptHandlers.add(handler);
    return () => interruptHandlers.delete(handler);
  },
  now: () => Date.now(),
};

// Ctrl-C goes to whichever command is waiting on something it can stop (following a seed);
// anything else ends the way Ctrl-C always does.
process.on('SIGINT', () => {
  if (interruptHandlers.size === 0) process.exit(130);
  for (const handler of [...interruptHandlers]) handler();
});

// A closed pipe (`seedwire ops | head`) is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const env = {
  SEEDWIRE_CONTROLLER: process.env['SEEDWIRE_CONTROLLER'],
  SEEDWIRE_ADMIN_TOKEN: process.env['SEEDWIRE_ADMIN_TOKEN'],
  SEEDWIRE_DATA_DIR: process.env['SEEDWIRE_DATA_DIR'],
};

runCli(process.argv.slice(2), io, env, process.cwd())
  .then((code) => {
    process.exitCode = code;
  })
  .catch((error: unknown) => {
    process.stderr.write(`seedwire: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
