/**
 * The spawner process's whole program. The agent starts it as `node - seedwire-spawner` and
 * writes `(spawnerMain)(require, settings)` to its stdin (see source.ts), so the same code runs
 * from the sources, from dist/ and from the one-file bundle without a file to locate. It must
 * therefore be self-contained: no imports, no references outside this function, built-in modules
 * only through the `req` it is given.
 *
 * Why it exists: forking the agent (a large heap and many mappings) costs several milliseconds per
 * command and blocks the agent's event loop while it does; this process is small, and keeps a few
 * bash processes started ahead of need (each blocked reading its command), so a command usually
 * starts without any fork or exec on its path.
 *
 * It talks only to its parent, over fd 3 (a socketpair the parent created; nothing on disk).
 * Frames both ways: u32 length of the rest, u8 type, u32 command id, payload (wire.ts has the
 * agent's side and the type numbers). It never kills anything on the agent's behalf: the agent
 * signals a command's process group itself, by the pid reported in STARTED.
 */

/** What the agent passes in (also the JSON of a RUN frame's payload, minus the settings). */
export interface SpawnerSettings {
  /** bash processes kept waiting for a command. */
  warm: number;
  /** Commands longer than this start a fresh `bash -c` (a waiting bash reads its command a byte at a time). */
  warmMaxCommandBytes: number;
  /** A waiting bash taken by a command that is still running is replaced after this long. */
  refillIdleMs: number;
}

export function spawnerMain(req: (id: string) => unknown, settings: SpawnerSettings): void {
  const cp = req('node:child_process') as typeof import('node:child_process');
  const net = req('node:net') as typeof import('node:net');
  type Child = import('node:child_process').ChildProcess;

  const T = { run: 1, started: 10, stdout: 11, stderr: 12, done: 13, ready: 20 } as const;
  // A waiting bash reads its command from fd 3, not stdin: stdin stays /dev/null as for any
  // command, and bash never sees a socket there (on a socket it would read ~/.bashrc, taking
  // itself for a remote shell). The unset goes on a line of its own so that a syntax error's
  // message quotes the command alone.
  const WRAPPER = `IFS= read -r -d '' -u 3 __seedwire_command || exit 0; exec 3<&-; eval "unset __seedwire_command\n$__seedwire_command"`;

  const channel = new net.Socket({ fd: 3, readable: true, writable: true });
  const running = new Map<number, Child>();
  const warm: Child[] = [];
  let paused = false;
  let closing = false;
  let warmFailures = 0;

  function send(type: number, id: number, payload: Buffer): void {
    const head = Buffer.allocUnsafe(9);
    head.writeUInt32BE(5 + payload.length, 0);
    head.writeUInt8(type, 4);
    head.writeUInt32BE(id, 5);
    const ok = channel.write(payload.length > 0 ? Buffer.concat([head, payload]) : head);
    if (!ok && !paused) {
      // The agent reads slower than commands write: stop reading their pipes until it catches up.
      paused = true;
      for (const child of running.values()) {
        child.stdout?.pause();
        child.stderr?.pause();
      }
    }
  }
  channel.on('drain', () => {
    paused = false;
    for (const child of running.values()) {
      child.stdout?.resume();
      child.stderr?.resume();
    }
  });

  function sendJson(type: number, id: number, value: unknown): void {
    send(type, id, Buffer.from(JSON.stringify(value), 'utf8'));
  }

  function commandPipe(child: Child): import('node:stream').Writable | undefined {
    return (child.stdio[3] as import('node:stream').Writable | null | undefined) ?? undefined;
  }

  function startWarm(): void {
    if (closing || warm.length >= settings.warm) return;
    let child: Child;
    try {
      child = cp.spawn('bash', ['-c', WRAPPER], { detached: true, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    } catch {
      warmFailures += 1;
      return;
    }
    child.on('error', () => undefined);
    commandPipe(child)?.on('error', () => undefined);
    // A waiting bash that ends before it was given a command (killed from outside) is replaced,
    // but not in a tight loop if bash cannot start at all.
    child.once('exit', () => {
      const at = warm.indexOf(child);
      if (at < 0) return;
      warm.splice(at, 1);
      warmFailures += 1;
      if (warmFailures < 5) setTimeout(startWarm, 100 * warmFailures).unref();
    });
    warm.push(child);
  }

  // A spawn blocks this process until bash has exec'd (milliseconds on a busy host), so a new
  // waiting bash is started when that delays nothing: right after a command's end went out (the
  // next request is then still on its way through the controller), or after a pause with none.
  let refillTimer: NodeJS.Timeout | undefined;
  function refillWarm(delayMs: number): void {
    if (closing || warm.length >= settings.warm) return;
    if (refillTimer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(refillTimer);
    }
    refillTimer = setTimeout(() => {
      refillTimer = undefined;
      const before = warm.length;
      startWarm();
      if (warm.length > before) refillWarm(0);
    }, delayMs);
  }

  interface RunRequest {
    command: string;
    env?: Record<string, string>;
    cwd?: string;
    pipeGraceMs: number;
  }

  function launch(id: number, request: RunRequest): void {
    const plain = request.env === undefined && request.cwd === undefined && Buffer.byteLength(request.command) <= settings.warmMaxCommandBytes && !request.command.includes('\0');
    let child = plain ? warm.shift() : undefined;
    if (child && child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      commandPipe(child)?.end(`${request.command}\0`);
      refillWarm(settings.refillIdleMs);
    } else {
      child = undefined;
      try {
        child = cp.spawn('bash', ['-c', request.command], {
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: request.env === undefined ? process.env : { ...process.env, ...request.env },
          ...(request.cwd === undefined ? {} : { cwd: request.cwd }),
        });
      } catch (error) {
        sendJson(T.done, id, { code: null, signal: null, error: error instanceof Error ? error.message : String(error) });
        return;
      }
      if (plain) refillWarm(settings.refillIdleMs);
    }
    const proc = child;
    running.set(id, proc);
    let spawnError: string | undefined;
    proc.on('error', (error) => {
      spawnError = error.message;
    });
    if (proc.pid !== undefined) send(T.started, id, Buffer.from(String(proc.pid), 'utf8'));

    const pipes: Array<Promise<void>> = [];
    for (const [name, type] of [['stdout', T.stdout], ['stderr', T.stderr]] as const) {
      const stream = proc[name];
      if (!stream) continue;
      if (paused) stream.pause();
      pipes.push(
        new Promise<void>((resolve) => {
          stream.on('data', (chunk: Buffer) => send(type, id, chunk));
          stream.once('end', resolve);
          stream.once('close', resolve);
          stream.once('error', () => resolve());
        }),
      );
    }
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
      proc.once('error', () => resolve({ code: null, signal: null }));
    });
    // Cannot reject: every step inside settles (timers, stream events, a synchronous write).
    void exited.then(async (end) => {
      // Output written just before exit is still in the pipes: drain it, but do not wait for a
      // background grandchild that inherited them.
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        Promise.all(pipes).then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), request.pipeGraceMs);
        }),
      ]);
      clearTimeout(timer);
      if (!drained) {
        proc.stdout?.destroy();
        proc.stderr?.destroy();
      }
      running.delete(id);
      sendJson(T.done, id, spawnError === undefined ? end : { ...end, error: spawnError });
      refillWarm(0);
    });
  }

  let pending: Buffer = Buffer.alloc(0);
  channel.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      const type = pending.readUInt8(4);
      const id = pending.readUInt32BE(5);
      const payload = pending.subarray(9, 4 + length);
      pending = pending.subarray(4 + length);
      if (type !== T.run) continue;
      let request: RunRequest;
      try {
        request = JSON.parse(payload.toString('utf8')) as RunRequest;
      } catch (error) {
        sendJson(T.done, id, { code: null, signal: null, error: `unreadable request: ${error instanceof Error ? error.message : String(error)}` });
        continue;
      }
      launch(id, request);
    }
  });

  // The agent is gone (or stopping us): what it started must not outlive it unsupervised.
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    for (const child of running.values()) {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      } catch {
        // the group is already gone
      }
    }
    clearTimeout(refillTimer);
    for (const child of warm.splice(0)) commandPipe(child)?.end();
    channel.destroy();
    setTimeout(() => process.exit(0), 50).unref();
  };
  channel.on('end', shutdown);
  channel.on('error', shutdown);
  process.on('SIGTERM', shutdown);

  for (let i = 0; i < settings.warm; i += 1) startWarm();
  send(T.ready, 0, Buffer.alloc(0));
}
