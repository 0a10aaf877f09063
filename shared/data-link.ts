/**
 * Data connections: the second kind of WebSocket an agent dials to the controller, one per side of
 * a stream, carrying that stream's data frames and credit frames only (docs/protocol.md, "Data
 * connections"). The control socket keeps ops, output and heartbeats.
 */
import { z } from 'zod';

/** The path of a data connection on the controller's one port (the control link is `/agent`). */
export const DATA_PATH = '/data';

/** In the hello's capabilities: this agent dials data connections when a seed step hands it a stream token. */
export const DATA_CONNECTIONS_CAPABILITY = 'data-connections';

/** Which side of a stream a data connection carries. */
export const DataRoleSchema = z.enum(['send', 'receive']);
export type DataRole = z.infer<typeof DataRoleSchema>;

/**
 * The handshake headers of a data connection besides `Authorization: Bearer <stream token>`:
 * what the agent claims, checked by the controller against what the token was minted for.
 */
export const DATA_HEADERS = {
  agent: 'x-seedwire-agent',
  stream: 'x-seedwire-stream',
  role: 'x-seedwire-role',
} as const;

/** What a seed step carries so the agent can open the stream's data connection. */
export const DataTicketSchema = z.object({
  /** One-time stream token: bound to the stream, this agent and its role; expires if unused. */
  token: z.string().min(16).max(256),
});
export type DataTicket = z.infer<typeof DataTicketSchema>;
