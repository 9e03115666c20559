export { SyncKairos } from './client.js';
export type { SyncKairosOptions, WebSocketCtor, ClientEvents } from './client.js';
export { LiveSession } from './session.js';
export type { ConnectionState, ConnectionInfo, ReconnectOptions, SessionEvents } from './session.js';
export { SyncKairosError } from './errors.js';
export { ClockSync, sampleOf } from './clock.js';
export type { ClockInfo, ClockOptions, Sample, ServerStamps } from './clock.js';
export { backoff } from './backoff.js';
export type * from './types.js';
