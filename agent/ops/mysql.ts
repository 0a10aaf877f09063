/** The mysql-* operations (README, "Operations") and delete-mysql-datadir. */
import { PUBLIC_OP_PARAMS } from '../../shared/ops.js';
import { SeedwireError } from '../../shared/errors.js';
import {
  checkMysqlRunning,
  deleteDatadirContents,
  measureDiskUsage,
  measureFreeSpace,
  readLogTail,
  requireMysql,
  startMysql,
  stopMysql,
  type GuardDeps,
  type ServiceDeps,
} from '../mysql/index.js';
import { defineOp, type OpContext, type OpDefinition } from './types.js';

const DEFAULT_TAIL_LINES = 40;

function serviceDeps(ctx: OpContext): ServiceDeps & GuardDeps {
  return { mysql: requireMysql(ctx.config), backup: ctx.config.backup, run: ctx.run, signal: ctx.signal };
}

export const mysqlOps: OpDefinition[] = [
  defineOp({
    name: 'mysql-status',
    params: PUBLIC_OP_PARAMS['mysql-status'],
    requires: ['mysql'],
    run: async (ctx) => ({ result: { running: await checkMysqlRunning(serviceDeps(ctx)) } }),
  }),
  defineOp({
    name: 'mysql-start',
    params: PUBLIC_OP_PARAMS['mysql-start'],
    requires: ['mysql'],
    mutates: true,
    run: async (ctx) => ({ result: { running: await startMysql(serviceDeps(ctx)) } }),
  }),
  defineOp({
    name: 'mysql-stop',
    params: PUBLIC_OP_PARAMS['mysql-stop'],
    requires: ['mysql'],
    mutates: true,
    run: async (ctx) => ({ result: { running: await stopMysql(serviceDeps(ctx)) } }),
  }),
  defineOp({
    name: 'mysql-port',
    params: PUBLIC_OP_PARAMS['mysql-port'],
    requires: ['mysql'],
    run: async (ctx) => ({ result: { port: requireMysql(ctx.config).port } }),
  }),
  defineOp({
    name: 'mysql-du',
    params: PUBLIC_OP_PARAMS['mysql-du'],
    requires: ['mysql'],
    run: async (ctx) => ({ result: { bytes: await measureDiskUsage(requireMysql(ctx.config).datadir, ctx.signal) } }),
  }),
  defineOp({
    name: 'mysql-datadir-available-space',
    params: PUBLIC_OP_PARAMS['mysql-datadir-available-space'],
    requires: ['mysql'],
    run: async (ctx) => ({ result: { bytes: await measureFreeSpace(requireMysql(ctx.config).datadir) } }),
  }),
  defineOp({
    name: 'mysql-error-log-tail',
    params: PUBLIC_OP_PARAMS['mysql-error-log-tail'],
    requires: ['mysql'],
    run: async (ctx, params) => {
      const { errorLog } = requireMysql(ctx.config);
      if (!errorLog) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'mysql.errorLog is not set; set it to the MySQL error log path');
      try {
        return { result: { lines: await readLogTail(errorLog, params.lines ?? DEFAULT_TAIL_LINES) } };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EACCES') throw new SeedwireError('SEEDWIRE_OP_REFUSED', `mysql.errorLog ${errorLog} cannot be read (${code})`, { cause: error });
        throw error;
      }
    },
  }),
  defineOp({
    name: 'delete-mysql-datadir',
    params: PUBLIC_OP_PARAMS['delete-mysql-datadir'],
    requires: ['mysql'],
    mutates: true,
    run: async (ctx) => {
      await deleteDatadirContents(serviceDeps(ctx));
      ctx.log.info({ datadir: ctx.config.mysql?.datadir }, 'datadir contents deleted');
      return { result: { deleted: true } };
    },
  }),
];
