export * from './errors.js';
export * from './echo.js';
export * from './frames.js';
export * from './protocol.js';
export * from './release-frames.js';
export * from './validate.js';
export * from './parser.js';
export * from './framed-bytes.js';
export * from './path-guard.js';
export * from './units.js';
export * from './logger.js';
export * from './version.js';
export * from './token.js';
export * from './daemon.js';
export * from './objects.js';
export * from './cli-args.js';
// metrics-text.js is its own entry (@relayer/common/metrics-text): prom-client costs every `relay send` ~35 ms to load.
