/** Cluster mode's metrics, registered on the controller's /metrics registry once the cluster link exists. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Cluster } from './cluster.js';

export function registerClusterMetrics(registry: Registry, cluster: Cluster): void {
  new Gauge({
    name: 'seedwire_cluster_bus_connected',
    help: 'Whether the cluster bus (NATS) is connected: 1 or 0',
    registers: [registry],
    collect() {
      this.set(cluster.link.connected() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'seedwire_cluster_agents_held',
    help: 'Agents this controller answers for on the bus',
    registers: [registry],
    collect() {
      this.set(cluster.holder.heldCount());
    },
  });
  new Gauge({
    name: 'seedwire_cluster_routed_operations_running',
    help: 'Operations this controller routed to another controller that have not ended',
    registers: [registry],
    collect() {
      this.set(cluster.routed.stats().running);
    },
  });
  new Counter({
    name: 'seedwire_cluster_routed_operations_total',
    help: 'Operations this controller routed to the controller holding their agent',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(cluster.routed.stats().started);
    },
  });
  new Gauge({
    name: 'seedwire_cluster_events_following',
    help: "Whether this controller follows the other controllers' events now (1 while a viewer here watches the fleet, and for a while after): 1 or 0",
    registers: [registry],
    collect() {
      this.set(cluster.events.following ? 1 : 0);
    },
  });
  new Counter({
    name: 'seedwire_cluster_events_unshared_total',
    help: 'Events of this controller not sent to the others (bus down, or too large)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(cluster.events.unsent);
    },
  });
}
