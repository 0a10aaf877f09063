/**
 * Tracks the HTTP server's sockets so a drain can close the ones carrying no request — including
 * sockets a client opened but never used, which Node's closeIdleConnections() leaves alone (they
 * would hold server.close() open until the client's own keep-alive timeout).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionTracker {
  /** Destroys every socket with no request in progress (upgraded sockets belong to the hub). */
  closeIdle(): void;
}

export function trackConnections(server: Server): ConnectionTracker {
  const inFlight = new Map<Socket, number>();
  server.on('connection', (socket: Socket) => {
    inFlight.set(socket, 0);
    socket.once('close', () => inFlight.delete(socket));
  });
  server.on('request', (req, res) => {
    const socket = req.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once('close', () => {
      if (inFlight.has(socket)) inFlight.set(socket, Math.max(0, (inFlight.get(socket) ?? 1) - 1));
    });
  });
  server.on('upgrade', (req) => inFlight.delete(req.socket));
  return {
    closeIdle() {
      for (const [socket, count] of inFlight) if (count === 0) socket.destroy();
    },
  };
}
