// The connection's state machine: a discriminated union and a pure transition function.
// "connected" is reachable only through `hello`, i.e. after the host answered `hello-ok`.

import type { ErrorShape, HelloOk } from './frames';

export type ConnState =
  /** Opening the socket or waiting for the handshake. `attempt` 0 is the first try. */
  | { kind: 'connecting'; attempt: number }
  /** The host answered hello-ok. */
  | { kind: 'connected'; hello: HelloOk }
  /** The connection failed or dropped; the next attempt starts after `delayMs`. */
  | { kind: 'retrying'; attempt: number; reason: string; delayMs: number }
  /** The host refused the operator token. Needs a new token; no retry. */
  | { kind: 'unauthorized'; error: ErrorShape }
  /** Stopped: by the user (no error) or because retrying cannot help (e.g. PROTOCOL_MISMATCH). */
  | { kind: 'closed'; error?: ErrorShape };

export type ConnEvent =
  | { type: 'start' }
  | { type: 'hello'; hello: HelloOk }
  /** `jitter` in [0, 1) picks the delay inside the backoff window (Math.random() in production). */
  | { type: 'lost'; reason: string; jitter: number }
  | { type: 'retry' }
  | { type: 'refused'; error: ErrorShape }
  | { type: 'stop' };

export const initialState: ConnState = { kind: 'closed' };

/** Errors at `connect` that retrying with the same token cannot fix. */
export function isFatalConnectError(error: ErrorShape): 'unauthorized' | 'closed' | null {
  if (error.code === 'UNAUTHORIZED') return 'unauthorized';
  if (error.code === 'PROTOCOL_MISMATCH' || error.code === 'FORBIDDEN') return 'closed';
  return null;
}

/**
 * The next state. Events that make no sense in the current state leave it unchanged (the same
 * object), so callers can compare by identity to see whether anything happened.
 */
export function transition(state: ConnState, event: ConnEvent): ConnState {
  switch (event.type) {
    case 'start':
      // A fresh start (new token, user pressed Reconnect) resets the attempt counter.
      if (state.kind === 'closed' || state.kind === 'unauthorized' || state.kind === 'retrying') {
        return { kind: 'connecting', attempt: 0 };
      }
      return state;
    case 'hello':
      if (state.kind === 'connecting') return { kind: 'connected', hello: event.hello };
      return state;
    case 'lost':
      if (state.kind === 'connecting' || state.kind === 'connected') {
        // Consecutive failures count up; a connection that reached hello-ok starts again at 1.
        const attempt = state.kind === 'connecting' ? state.attempt + 1 : 1;
        const delayMs = backoffDelay(attempt, () => event.jitter);
        return { kind: 'retrying', attempt, reason: event.reason, delayMs };
      }
      return state;
    case 'retry':
      if (state.kind === 'retrying') return { kind: 'connecting', attempt: state.attempt };
      return state;
    case 'refused': {
      if (state.kind !== 'connecting' && state.kind !== 'connected') return state;
      const fatal = isFatalConnectError(event.error);
      if (fatal === 'unauthorized') return { kind: 'unauthorized', error: event.error };
      if (fatal === 'closed') return { kind: 'closed', error: event.error };
      return state;
    }
    case 'stop':
      if (state.kind === 'closed' && !state.error) return state;
      return { kind: 'closed' };
  }
}

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}

export const defaultBackoff: BackoffOptions = { baseMs: 500, capMs: 30_000 };

/**
 * Capped exponential backoff with jitter: the ceiling doubles with each attempt (1-based) up
 * to `capMs`, and the delay is drawn from [ceiling/2, ceiling) so clients that lost the same
 * host do not come back in lockstep. `random` is injectable for tests.
 */
export function backoffDelay(attempt: number, random: () => number = Math.random, opts: BackoffOptions = defaultBackoff): number {
  const n = Math.max(1, Math.floor(attempt));
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(n - 1, 30));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(ceiling / 2 + (r * ceiling) / 2);
}

/** A short sentence for the status line. */
export function describeState(state: ConnState): string {
  switch (state.kind) {
    case 'connecting':
      return state.attempt === 0 ? 'Connecting…' : `Connecting (attempt ${state.attempt + 1})…`;
    case 'connected':
      return `Connected to ${state.hello.server.name || 'the host'}`;
    case 'retrying':
      return `Disconnected: ${state.reason}. Retrying in ${Math.ceil(state.delayMs / 1000)} s`;
    case 'unauthorized':
      return `Not signed in: ${state.error.message}`;
    case 'closed':
      return state.error ? `Stopped: ${state.error.message}` : 'Not connected';
  }
}
