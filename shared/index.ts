export * from './errors.js';
export * from './limits.js';
export * from './frames.js';
export * from './codec.js';
export * from './ops.js';
export * from './version.js';
