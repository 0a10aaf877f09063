/**
 * A CPU profile of a running Node process over one stretch of its life, through the inspector:
 * SIGUSR1 opens it (on the port of the process's --inspect-port, 9229 by default),
 * the DevTools protocol starts and stops V8's sampling profiler, and the profile is written as a
 * .cpuprofile (bench/profile-summary.ts reads it). `--cpu-prof` covers a process's whole life;
 * this covers only what the bench times (the cluster section's loop, not the herd before it).
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';

interface Session {
  send(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
}

async function connect(pid: number, port: number): Promise<Session> {
  process.kill(pid, 'SIGUSR1');
  let url: string | undefined;
  for (let i = 0; i < 50 && url === undefined; i++) {
    try {
      const list = (await fetch(`http://127.0.0.1:${port}/json/list`).then((res) => res.json())) as Array<{ webSocketDebuggerUrl?: string }>;
      url = list[0]?.webSocketDebuggerUrl;
    } catch {
      await delay(100);
    }
  }
  if (url === undefined) throw new Error(`process ${pid} opened no inspector on port ${port}`);
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let next = 0;
  const waiting = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    if (message.id === undefined) return;
    const w = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.error) w?.reject(new Error(message.error.message));
    else w?.resolve(message.result ?? {});
  });
  return {
    send(method, params = {}) {
      const id = ++next;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
    },
    close: () => ws.close(),
  };
}

/** Runs `fn` while process `pid` is profiled; writes the profile to `file`. */
export async function profileWhile<T>(pid: number, file: string, fn: () => Promise<T>, port = 9229): Promise<T> {
  const session = await connect(pid, port);
  try {
    await session.send('Profiler.enable');
    await session.send('Profiler.setSamplingInterval', { interval: 200 });
    await session.send('Profiler.start');
    const result = await fn();
    const { profile } = (await session.send('Profiler.stop')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(profile));
    return result;
  } finally {
    session.close();
  }
}
