/**
 * Links (issue 11): a seed over 1 Gbit/s, 40 ms RTT links against `tar | nc` through a dial-out
 * relay on the same links (bench/links.ts; root, network namespaces, tc; skipped with the reason
 * otherwise, or with SEEDWIRE_BENCH_LINKS=0).
 */
import { ROOT } from '../harness.js';
import { linksTable, runLinksPhase } from '../links.js';
import type { BenchSection } from '../section.js';
import { atLeast } from '../targets.js';

export const linksSection: BenchSection = {
  key: 'links',
  title: 'links: seeds over 1 Gbit/s, 40 ms RTT links against tar | nc through a relay (network namespaces)',
  async run(ctx) {
    const result = await runLinksPhase({ dataset: ctx.dataset, root: ROOT, log: ctx.log, fail: ctx.fail, seedTimeoutMs: ctx.env.seedTimeoutMs });
    ctx.results.sections['links'] = result;
    for (const [what, value] of linksTable(result)) ctx.log(value ? `${what}: ${value}` : what);
    if (result.skipped) return;
    ctx.figure({ key: 'links.directRatio', what: 'seed over 1 Gbit/s links / tar | nc through a dial-out relay, no delay', value: result.direct?.ratio ?? null, unit: '×', target: atLeast(0.9) });
    ctx.figure({ key: 'links.delayedRatio', what: 'seed over 1 Gbit/s, 40 ms RTT + stalls / tar | nc through the relay, same links', value: result.delayed?.ratio ?? null, unit: '×', target: atLeast(0.9) });
  },
};
