/**
 * The controller's event bus: every change the console shows. Events carry a monotonic `seq`
 * (the SSE id); a viewer resumes from a cursor with Last-Event-ID. Each viewer's queue is bounded;
 * when a viewer falls behind, the events it missed are replaced by one `gap` event
 * `{from, to}` and the stream carries on.
 */
export type EventType =
  | 'agent' // an agent's row or facts changed: data = agent (as GET /api/agents/:id)
  | 'operation' // an operation was created or changed: data = operation (as GET /api/operations/:id, without output)
  | 'output' // data = {operationId, seq, stream, data}
  | 'seed' // data = seed (as GET /api/seeds/:id)
  | 'audit' // data = audit row
  | 'gap'; // data = {from, to}: events this viewer missed

export interface BusEvent {
  seq: number;
  type: EventType;
  at: string;
  data: unknown;
}

export interface EventBus {
  /** `json`: `data` already serialized (JSON.stringify(data)), when the caller has it. */
  publish(type: Exclude<EventType, 'gap'>, data: unknown, json?: string): BusEvent;
  /** Recent events after `seq` still held in the bus's ring (for resume); null if they have fallen out. */
  since(seq: number): BusEvent[] | null;
  subscribe(listener: (event: BusEvent) => void): () => void;
  readonly lastSeq: number;
}
