/**
 * What differs between seed methods, behind one interface: each method is one file in this
 * folder and one line in the registry (index.ts). The stage loop, the transfer attempt loop and
 * the cleanup call these hooks and know no method by name.
 */
import type { Facts } from '../../../shared/frames.js';
import type { OpName, OpParamsInput, OpResultOf, SeedResult, SendSummary } from '../../../shared/ops.js';

/** What `seed-send` reads on the source (shared/ops.ts SeedSourceSchema: a new kind there needs its reader on the agent). */
type SourceKind = OpParamsInput<'seed-send'>['source']['kind'];
import type { SeedView } from '../types.js';

/** The read-only view a method's precheck gets of the source. */
export interface MethodPrecheck {
  source: string;
  sourceFacts: Facts;
  /** A read-only question to the source (not a seed step: nothing is recorded yet). */
  askSource<N extends OpName>(op: N, params: OpParamsInput<N>): Promise<OpResultOf<N>>;
  /** Refuses the seed with SEEDWIRE_PRECHECK_FAILED and this message. */
  refuse(message: string): never;
}

/**
 * What a method did to the source, persisted with the seed before the step that does it, so the
 * cleanup undoes it even after a controller crash.
 */
export interface SourceState {
  snapshotName(): Promise<string | null>;
  setSnapshotName(name: string | null): Promise<void>;
  /** True once this seed decided to stop the source's MySQL (and until it started it again). */
  sourceStopped(): Promise<boolean>;
  setSourceStopped(stopped: boolean): Promise<void>;
}

/** A method's view of a running seed, in the prepare-source and cleanup-source stages. */
export interface MethodSteps {
  seed: SeedView;
  state: SourceState;
  /** The source's facts as last reported (null before the first report). */
  sourceFacts(): Facts | null;
  /** A seed step on the source with call id `<seed>.<stage>.<name>` (stable across restarts). */
  onSource<N extends OpName>(op: N, params: OpParamsInput<N>, name: string): Promise<OpResultOf<N>>;
}

export interface SeedMethod {
  /** How the transfer reads the source and how the target takes the bytes. */
  readonly transfer: {
    /** `seed-send`'s source. */
    source: SourceKind;
    /** `seed-receive`'s format: the seed stream of files ('tree') or a backup tool's stream ('stream'). */
    format: 'tree' | 'stream';
    /** Whether an interrupted attempt resumes from the target's committed offset or starts over from 0. */
    resumable: boolean;
  };
  /** Refusals beyond the common prechecks (the method's own config and live state on the source). */
  precheck?(check: MethodPrecheck): Promise<void>;
  /** The prepare-source stage; returns the stage's message. */
  prepareSource(steps: MethodSteps): Promise<string>;
  /** Extra `seed-receive` params (the extractor a backup stream needs). */
  receiveParams?(sourceFacts: Facts | null): Pick<OpParamsInput<'seed-receive'>, 'backupTool'>;
  /** Extra `seed-finalize-target` params (a backup is prepared with the tool that made it). */
  finalizeParams?(sent: SendSummary): Pick<OpParamsInput<'seed-finalize-target'>, 'prepare'>;
  /** Extra fields of the seed's result. */
  resultExtras?(sent: SendSummary): Partial<SeedResult>;
  /** Undoes prepare-source (in the cleanup-source stage and after a failure or abort); returns what it did. */
  cleanupSource(steps: MethodSteps): Promise<string[]>;
}
