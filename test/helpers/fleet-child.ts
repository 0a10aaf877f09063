/** Child process of startFleet (fleet-client.ts): runs its share of load clients until killed. */
import { runFleetClients, type FleetMessage } from './fleet-client.js';

const url = process.env['FLEET_URL'];
const token = process.env['FLEET_TOKEN'];
const ids = (process.env['FLEET_IDS'] ?? '').split(',').filter(Boolean);
const stateDir = process.env['FLEET_STATE_DIR'];
if (!url || !token || ids.length === 0 || !stateDir || !process.send) {
  process.stderr.write('fleet-child: FLEET_URL, FLEET_TOKEN, FLEET_IDS, FLEET_STATE_DIR and an IPC channel are required\n');
  process.exit(2);
}
runFleetClients({
  // Several controllers, comma-separated: the clients spread over them (fleet-client.ts).
  url: url.includes(',') ? url.split(',') : url,
  firstIndex: Number(process.env['FLEET_FIRST_INDEX'] ?? '0'),
  token,
  agentIds: ids,
  stateDir,
  trace: process.env['FLEET_TRACE'] === '1',
  report: (message: FleetMessage) => process.send?.(message),
});
// The parent going away (its IPC channel closing) ends the children too.
process.on('disconnect', () => process.exit(0));
