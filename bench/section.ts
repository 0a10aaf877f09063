/**
 * A section of `make bench`: one measurement with its own processes, run in the order of
 * bench/sections.ts. A section records numbers into `results` (its own key under
 * `results.sections` for sections added later), each target figure through `figure`, and
 * reports a failure through `fail` (the run goes on with the next section).
 */
import type { Dataset } from './dataset.js';
import type { BenchEnv } from './env.js';
import type { BenchResults } from './results.js';
import type { Figure, FigureInput } from './targets.js';

export interface BenchContext {
  env: BenchEnv;
  results: BenchResults;
  /** The run's dataset (cached by recipe), the same for every section (not built when no selected section needs it). */
  readonly dataset: Dataset;
  /** Another dataset of the same recipe but another size (built once, then cached). */
  datasetOfSize(bytes: number): Promise<Dataset>;
  /** Records a figure (with its target, judged) under this section. */
  figure(input: Omit<FigureInput, 'section'>): Figure;
  fail(phase: string, error: unknown): void;
  log(line: string): void;
}

export interface BenchSection {
  /** Stable key: SEEDWIRE_BENCH_SECTIONS selects by it; `results.timings` and figures name it. */
  key: string;
  /** One line for the log. */
  title: string;
  /** false: the section uses no dataset, and a run of only such sections builds none. @default true */
  needsDataset?: boolean;
  run(ctx: BenchContext): Promise<void>;
}
