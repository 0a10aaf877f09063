/**
 * The V8 flags seedwire's long-running processes (agent and controller) are started with: by the
 * systemd units (packaging/systemd/), the `seedwire-agent` and `seedwire-controller` commands'
 * shebangs, and `make bench`. A unit test keeps those places in step with this list.
 *
 * `--initial-old-space-size`: a receiving process (the target agent, the controller relaying)
 * takes megabytes a second of socket and message buffers. With a live heap of ~15 MiB V8 sets the
 * old generation's limit near 38 MiB and then, during a seed, runs a full mark-compact every
 * 50–100 ms (about 100 per 1.5 GiB seed on the target, 60 on the controller: `--trace-gc`), each
 * marking the whole heap on a second thread. Starting the limit at 64 MiB leaves 10–20 of them
 * and took a quarter of the target's CPU seconds per seed off (docs/performance.md, "Garbage
 * collection during a seed"). It only sets where the limit starts, not a cap, and costs no RSS
 * at rest. V8 reads it when the heap is set up: it cannot go in NODE_OPTIONS (Node refuses it
 * there) nor be set from inside the process (v8.setFlagsFromString has no effect then).
 */
export const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];
