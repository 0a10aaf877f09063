/**
 * The delaying proxy of test/helpers/delay-proxy.ts as a process of its own, for `make bench`'s
 * links section (bench/links.ts): a userspace proxy in the bench's own event loop would compete
 * with the bench's polling and event feed and could become the bottleneck it is meant to measure.
 *
 *   node --import tsx bench/delay-proxy-process.ts --delay-ms 20 [--stall-every-ms 3000 --stall-ms 150] \
 *     --forward LISTEN_HOST=TARGET_HOST:TARGET_PORT [--forward ...]
 *
 * Each forward listens on LISTEN_HOST, a free port, and prints one JSON line
 * `{"msg":"listening","forward":I,"address":...,"port":...}`; then `{"msg":"ready"}`. On SIGTERM
 * or SIGINT it prints `{"msg":"stats","forwards":[{bytesForwarded,stalls}...]}`, closes and exits 0.
 */
import { startDelayProxy, type DelayProxy } from '../test/helpers/delay-proxy.js';

interface Forward {
  listen: string;
  target: { host: string; port: number };
}

interface Options {
  delayMs: number;
  stallEveryMs: number | undefined;
  stallMs: number | undefined;
  forwards: Forward[];
}

function parseNumber(flag: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || !Number.isFinite(value) || value < 0) throw new Error(`${flag}: expected a non-negative number, got '${text ?? ''}'`);
  return value;
}

function parseForward(text: string | undefined): Forward {
  const match = /^([^=]+)=(.+):(\d+)$/.exec(text ?? '');
  if (!match) throw new Error(`--forward: expected LISTEN_HOST=TARGET_HOST:TARGET_PORT, got '${text ?? ''}'`);
  return { listen: match[1]!, target: { host: match[2]!, port: Number(match[3]) } };
}

function parseArgs(argv: string[]): Options {
  const options: Options = { delayMs: 0, stallEveryMs: undefined, stallMs: undefined, forwards: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    switch (flag) {
      case '--delay-ms':
        options.delayMs = parseNumber(flag, value);
        break;
      case '--stall-every-ms':
        options.stallEveryMs = parseNumber(flag, value);
        break;
      case '--stall-ms':
        options.stallMs = parseNumber(flag, value);
        break;
      case '--forward':
        options.forwards.push(parseForward(value));
        break;
      default:
        throw new Error(`unknown flag '${flag ?? ''}'`);
    }
  }
  if (options.forwards.length === 0) throw new Error('--forward: at least one is needed');
  if ((options.stallEveryMs === undefined) !== (options.stallMs === undefined)) throw new Error('--stall-every-ms and --stall-ms go together');
  return options;
}

const print = (record: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(record)}\n`);

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const proxies: DelayProxy[] = [];
  const stop = async (): Promise<void> => {
    print({ msg: 'stats', forwards: proxies.map((p) => ({ bytesForwarded: p.bytesForwarded, stalls: p.stalls })) });
    await Promise.allSettled(proxies.map((p) => p.close()));
    process.exit(0);
  };
  // stop() cannot reject: the closes are settled, and printing to a pipe does not throw.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stop());
  for (const [i, forward] of options.forwards.entries()) {
    const proxy = await startDelayProxy({
      target: forward.target,
      listen: forward.listen,
      delayMs: options.delayMs,
      ...(options.stallEveryMs === undefined || options.stallMs === undefined ? {} : { stallEveryMs: options.stallEveryMs, stallMs: options.stallMs }),
    });
    proxies.push(proxy);
    print({ msg: 'listening', forward: i, address: proxy.address, port: proxy.port });
  }
  print({ msg: 'ready' });
}

main().catch((error: unknown) => {
  process.stderr.write(`delay-proxy: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});
