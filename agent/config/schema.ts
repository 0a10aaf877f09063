/**
 * The agent's configuration (README, "Agent configuration"): the only definition of its keys. Unknown keys
 * are refused (`.strict()`), so a typo never starts a half-configured daemon.
 */
import { z } from 'zod';
import type { ProxyEnv } from '../connection/proxy.js';

const AbsPath = z.string().min(1).refine((p) => p.startsWith('/'), 'must be an absolute path');
const Command = z.string().min(1).max(4096);
const Size = z.string().regex(/^\d+(\.\d+)?[KMGTP]?$/i, 'an LVM size such as 10G or 512M');

export const MysqlConfigSchema = z
  .object({
    datadir: AbsPath.refine((p) => p !== '/', 'must not be /'),
    port: z.number().int().min(1).max(65535).default(3306),
    user: z.string().min(1).max(64).optional(),
    errorLog: AbsPath.optional(),
    startCommand: Command,
    stopCommand: Command,
    statusCommand: Command,
    /** How long start/stop may take before SEEDWIRE_TIMEOUT. */
    commandTimeoutSeconds: z.number().int().positive().max(3600).default(300),
    /** The server's pid file and socket when they live outside the datadir: the datadir guard checks them too. */
    pidFile: AbsPath.optional(),
    socket: AbsPath.optional(),
  })
  .strict();

export const SnapshotConfigSchema = z
  .object({
    backend: z.enum(['lvm', 'btrfs', 'none']),
    mountPoint: AbsPath.optional(),
    lvm: z
      .object({
        volumeGroup: z.string().min(1).regex(/^[A-Za-z0-9+_.-]+$/),
        logicalVolume: z.string().min(1).regex(/^[A-Za-z0-9+_.-]+$/),
        size: Size,
        namePrefix: z.string().regex(/^[A-Za-z0-9+_.-]*$/).default('seedwire-'),
        mountOptions: z.string().optional(),
      })
      .strict()
      .optional(),
    btrfs: z
      .object({
        subvolume: AbsPath,
        snapshotDir: AbsPath,
        namePrefix: z.string().regex(/^[A-Za-z0-9+_.-]*$/).default('seedwire-'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.backend === 'lvm' && !s.lvm) ctx.addIssue({ code: 'custom', path: ['lvm'], message: 'required when backend is lvm' });
    if (s.backend === 'btrfs' && !s.btrfs) ctx.addIssue({ code: 'custom', path: ['btrfs'], message: 'required when backend is btrfs' });
    if (s.backend !== 'none' && !s.mountPoint) ctx.addIssue({ code: 'custom', path: ['mountPoint'], message: `required when backend is ${s.backend}` });
  });

const ControllerUrl = z
  .string()
  .url()
  .refine((u) => /^wss?:\/\//.test(u), 'must be a ws:// or wss:// URL')
  .refine((u) => !/[?&](token|access_token)=/i.test(u), 'must not carry a token; use token or tokenFile');

/** The same controller written twice (`ws://a/agent` and `ws://a:80/agent`) is one entry: refused. */
function sameUrl(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return a === b;
  }
}

const ControllerList = z
  .array(ControllerUrl)
  .min(1, 'must list at least one controller URL')
  .superRefine((urls, ctx) => {
    urls.forEach((url, i) => {
      const first = urls.findIndex((other) => sameUrl(other, url));
      if (first < i) ctx.addIssue({ code: 'custom', path: [i], message: `repeats controller.${first} (${url})` });
    });
  });

/** A string is a list of one, so the rest of the agent sees one shape. */
export const ControllerSchema = z
  .union([ControllerUrl, ControllerList], { error: (issue) => (issue.input === undefined ? 'required' : 'must be a ws:// or wss:// URL or a list of them') })
  .transform((value) => (typeof value === 'string' ? [value] : value));

export const AgentConfigSchema = z
  .object({
    /** One URL or a list tried in order (README, "Several controllers"); always a list once parsed. */
    controller: ControllerSchema,
    token: z.string().min(1).optional(),
    tokenFile: AbsPath.optional(),
    id: z.string().min(1).max(128).regex(/^[A-Za-z0-9._:@-]+$/).optional(),
    datacenter: z.string().min(1).max(128).optional(),
    datacenterPattern: z
      .string()
      .refine((p) => {
        try {
          new RegExp(p);
          return true;
        } catch {
          return false;
        }
      }, 'must be a valid regular expression')
      .optional(),
    stateDir: z.string().min(1).default('./.seedwire/agent'),
    /** `cert`/`key`: a client certificate for mutual TLS (the controller's --tls-client-ca); its CN is the agent id. */
    tls: z.object({ ca: AbsPath.optional(), insecureSkipVerify: z.boolean().default(false), cert: AbsPath.optional(), key: AbsPath.optional() }).strict().optional(),
    /** An HTTP CONNECT proxy for the dial-out link; wins over HTTPS_PROXY / HTTP_PROXY / NO_PROXY (agent/connection/proxy.ts). */
    proxy: z
      .object({
        url: z
          .string()
          .url()
          .refine((u) => /^https?:\/\//i.test(u), 'must be an http:// or https:// URL (the proxy the agent asks to CONNECT)')
          .refine((u) => !/^https?:\/\/[^/]*@/i.test(u), 'must not carry credentials; put user:password in proxy.credentialsFile'),
        /** One line `user:password`, read at start-up; never logged. */
        credentialsFile: AbsPath.optional(),
      })
      .strict()
      .optional(),
    mysql: MysqlConfigSchema.optional(),
    snapshot: SnapshotConfigSchema.optional(),
    backup: z
      .object({ tool: z.enum(['mariabackup', 'xtrabackup']), socket: AbsPath.optional(), extraArgs: z.array(z.string()).default([]) })
      .strict()
      .optional(),
    /** What a receiving agent accepts from a seed stream (docs/seed-stream.md). */
    receive: z
      .object({
        /** Accept received symlinks that lead outside the datadir (tablespaces kept elsewhere). */
        allowExternalSymlinks: z.boolean().default(false),
      })
      .strict()
      .optional(),
    customCommands: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/, 'custom command names: letters, digits and . _ - only'), Command).default({}),
    allowArbitraryCommands: z.boolean().default(false),
    /** Reloadable with SIGHUP, like customCommands and allowArbitraryCommands. */
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    /** Local health for host monitoring: stateDir/status.json, and an optional loopback endpoint. */
    status: z
      .object({
        intervalSeconds: z.number().int().min(1).max(300).default(5),
        /** 127.0.0.1:PORT, [::1]:PORT, localhost:PORT, or an absolute unix socket path; off unless set. */
        listen: z
          .string()
          .refine((v) => v.startsWith('/') || /^(127\.0\.0\.1|localhost|\[::1\]):\d{1,5}$/.test(v), 'must be 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or an absolute unix socket path (the status is for this host only)')
          .optional(),
      })
      .strict()
      .default({ intervalSeconds: 5 }),
    /** Protocol tuning; defaults in shared/limits.ts. Tests shorten these. */
    advanced: z
      .object({
        heartbeatMs: z.number().int().min(100).optional(),
        deadAfterMs: z.number().int().min(300).optional(),
        /** How long a dial waits for the controller's welcome before giving up and retrying. */
        handshakeTimeoutMs: z.number().int().min(500).optional(),
        reconnectBaseMs: z.number().int().min(10).optional(),
        reconnectCapMs: z.number().int().min(10).optional(),
        startupJitterMs: z.number().int().min(0).optional(),
        killGraceMs: z.number().int().min(10).optional(),
        /** false: seed bytes stay on the control link (for a front proxy that forwards only /agent); default true. */
        dataConnections: z.boolean().optional(),
        /** false: every command is forked from the agent itself instead of its small spawner process. */
        spawner: z.boolean().optional(),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.token && !c.tokenFile && !c.tls?.cert) ctx.addIssue({ code: 'custom', path: ['token'], message: 'required (or tokenFile, or SEEDWIRE_AGENT_TOKEN)' });
    if (Boolean(c.tls?.cert) !== Boolean(c.tls?.key)) ctx.addIssue({ code: 'custom', path: ['tls', c.tls?.cert ? 'key' : 'cert'], message: 'set both tls.cert and tls.key' });
    if (c.token && c.tokenFile) ctx.addIssue({ code: 'custom', path: ['tokenFile'], message: 'set token or tokenFile, not both' });
    if (c.datacenter && c.datacenterPattern) ctx.addIssue({ code: 'custom', path: ['datacenterPattern'], message: 'set datacenter or datacenterPattern, not both' });
  });

export type AgentConfigInput = z.input<typeof AgentConfigSchema>;
export type AgentConfigParsed = z.output<typeof AgentConfigSchema>;
export type MysqlConfig = z.output<typeof MysqlConfigSchema>;
export type SnapshotConfig = z.output<typeof SnapshotConfigSchema>;

/**
 * The resolved configuration handed to every module: the token read, the id and datacenter
 * decided, paths absolute. Built once at start-up by agent/config/load.ts.
 */
export interface AgentConfig extends Omit<AgentConfigParsed, 'token' | 'tokenFile' | 'id' | 'datacenter' | 'datacenterPattern' | 'stateDir'> {
  /** The enrollment (or per-agent) token; null when a client certificate alone identifies the agent. */
  token: string | null;
  id: string;
  hostname: string;
  datacenter: string | null;
  stateDir: string;
  /** HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (either case) as the agent started; the `proxy` key wins over them. */
  proxyEnv?: ProxyEnv | undefined;
}
