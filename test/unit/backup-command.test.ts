import { describe, expect, it } from 'vitest';
import { backupCommand } from '../../agent/transfer/backup.js';

describe('the hot backup command line (backup.tool, backup.socket, backup.extraArgs)', () => {
  it('streams xbstream through the local socket, no credentials', () => {
    expect(backupCommand({ tool: 'mariabackup', socket: '/run/mysqld/mysqld.sock', extraArgs: [] }, '/var/lib/seedwire/backup-1')).toEqual({
      file: 'mariabackup',
      args: ['--backup', '--stream=xbstream', '--target-dir=/var/lib/seedwire/backup-1', '--socket=/run/mysqld/mysqld.sock'],
    });
  });

  it('puts option-file arguments first, as MySQL tools require, and the rest after', () => {
    const { file, args } = backupCommand({ tool: 'xtrabackup', extraArgs: ['--parallel=4', '--defaults-file=/etc/mysql/my.cnf', '--no-defaults'] }, '/tmp/b');
    expect(file).toBe('xtrabackup');
    expect(args).toEqual(['--defaults-file=/etc/mysql/my.cnf', '--no-defaults', '--backup', '--stream=xbstream', '--target-dir=/tmp/b', '--parallel=4']);
    expect(args.some((a) => /password|--user/.test(a))).toBe(false);
  });
});
