/**
 * The sections of `make bench`, in the order they run (bench/section.ts). A new measurement is a
 * file under bench/sections/ and one line here; SEEDWIRE_BENCH_SECTIONS=key,key runs a subset.
 * The seed section compares against the baseline's figures, so the baseline comes first.
 */
import type { BenchSection } from './section.js';
import { baselineSection } from './sections/baseline.js';
import { clusterSection } from './sections/cluster.js';
import { commandSection } from './sections/command.js';
import { fleetSection } from './sections/fleet.js';
import { idleSection } from './sections/idle.js';
import { linksSection } from './sections/links.js';
import { memorySection } from './sections/memory.js';
import { parallelSection } from './sections/parallel.js';
import { rawLatencySection } from './sections/raw-latency.js';
import { seedSection } from './sections/seed.js';

export const SECTIONS: readonly BenchSection[] = [
  baselineSection,
  seedSection,
  parallelSection,
  memorySection, // after seed: compares with its peak RSS
  rawLatencySection,
  commandSection,
  idleSection,
  fleetSection,
  linksSection,
  clusterSection, // no dataset: `make bench-cluster` runs it alone
];
