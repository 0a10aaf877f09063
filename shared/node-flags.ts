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
 *
 * `--max-semi-space-size=2` (MiB; V8's default lets each semi-space grow to 16 on this machine):
 * a seed's receiving and sending processes allocate a small object or two per frame and hold few
 * of them across a scavenge, so a young generation of 2 × 2 MiB collects as much for less.
 * Measured on the seed section (docs/performance.md, "A fresh VM, and a smaller young
 * generation"): peak RSS controller / source / target 148–152 / 128–131 / 178–183 MiB →
 * 126–129 / 104–106 / 165–169 MiB, and the seed 252–258 → 269–279 MB/s, the target agent's CPU
 * 6.2–6.5 → 5.7–6.1 s.
 */
export const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64', '--max-semi-space-size=2'];
