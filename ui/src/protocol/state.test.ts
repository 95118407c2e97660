import { describe, expect, it } from 'vitest';
import { type ConnEvent, type ConnState, backoffDelay, describeState, initialState, transition } from './state';
import { parseHelloOk } from './frames';

const hello = parseHelloOk({ type: 'hello-ok', server: { name: 'studio' } })!;
const unauthorized = { code: 'UNAUTHORIZED', message: 'operator token does not match' };

describe('transition', () => {
  it('walks the happy path: closed -> connecting -> connected', () => {
    let s: ConnState = initialState;
    expect(s.kind).toBe('closed');
    s = transition(s, { type: 'start' });
    expect(s).toEqual({ kind: 'connecting', attempt: 0 });
    s = transition(s, { type: 'hello', hello });
    expect(s).toEqual({ kind: 'connected', hello });
  });

  it('counts consecutive failures and resets after hello-ok', () => {
    let s: ConnState = transition(initialState, { type: 'start' });
    s = transition(s, { type: 'lost', reason: 'refused', jitter: 0 });
    expect(s).toEqual({ kind: 'retrying', attempt: 1, reason: 'refused', delayMs: 250 });
    s = transition(s, { type: 'retry' });
    expect(s).toEqual({ kind: 'connecting', attempt: 1 });
    s = transition(s, { type: 'lost', reason: 'refused', jitter: 0 });
    expect(s).toMatchObject({ kind: 'retrying', attempt: 2, delayMs: 500 });
    s = transition(transition(s, { type: 'retry' }), { type: 'hello', hello });
    expect(s.kind).toBe('connected');
    s = transition(s, { type: 'lost', reason: 'gone', jitter: 0 });
    expect(s).toMatchObject({ kind: 'retrying', attempt: 1, reason: 'gone' });
  });

  it('goes to unauthorized on a refused token, and only a fresh start leaves it', () => {
    const connecting = transition(initialState, { type: 'start' });
    const s = transition(connecting, { type: 'refused', error: unauthorized });
    expect(s).toEqual({ kind: 'unauthorized', error: unauthorized });
    for (const e of [{ type: 'retry' }, { type: 'lost', reason: 'x', jitter: 0 }, { type: 'hello', hello }] as ConnEvent[]) {
      expect(transition(s, e)).toBe(s);
    }
    expect(transition(s, { type: 'start' })).toEqual({ kind: 'connecting', attempt: 0 });
  });

  it('stops on errors that a retry cannot fix, and keeps going on others', () => {
    const connecting = transition(initialState, { type: 'start' });
    const mismatch = { code: 'PROTOCOL_MISMATCH', message: 'update' };
    expect(transition(connecting, { type: 'refused', error: mismatch })).toEqual({ kind: 'closed', error: mismatch });
    // a transient refusal waits for the socket to close (then `lost`)
    expect(transition(connecting, { type: 'refused', error: { code: 'UNAVAILABLE', message: 'db' } })).toBe(connecting);
  });

  it('never reaches connected except from connecting via hello', () => {
    const states: ConnState[] = [
      initialState,
      { kind: 'retrying', attempt: 2, reason: 'x', delayMs: 1 },
      { kind: 'unauthorized', error: unauthorized },
      { kind: 'closed', error: unauthorized },
    ];
    for (const s of states) expect(transition(s, { type: 'hello', hello })).toBe(s);
  });

  it('leaves the state untouched (same object) for events that do not apply', () => {
    const closed = initialState;
    expect(transition(closed, { type: 'retry' })).toBe(closed);
    expect(transition(closed, { type: 'lost', reason: 'x', jitter: 0.3 })).toBe(closed);
    expect(transition(closed, { type: 'stop' })).toBe(closed);
    const connected: ConnState = { kind: 'connected', hello };
    expect(transition(connected, { type: 'start' })).toBe(connected);
    expect(transition(connected, { type: 'retry' })).toBe(connected);
  });

  it('stop wins from any state', () => {
    const states: ConnState[] = [
      { kind: 'connecting', attempt: 3 },
      { kind: 'connected', hello },
      { kind: 'retrying', attempt: 2, reason: 'x', delayMs: 1 },
      { kind: 'unauthorized', error: unauthorized },
      { kind: 'closed', error: unauthorized },
    ];
    for (const s of states) expect(transition(s, { type: 'stop' })).toEqual({ kind: 'closed' });
  });
});

describe('backoffDelay', () => {
  it('stays inside [ceiling/2, ceiling], doubling per attempt up to the cap', () => {
    for (let attempt = 1; attempt <= 40; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** (attempt - 1));
      for (const r of [0, 0.1, 0.5, 0.9, 0.999999]) {
        const d = backoffDelay(attempt, () => r);
        expect(d).toBeGreaterThanOrEqual(ceiling / 2);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
    expect(backoffDelay(1000, () => 1)).toBe(30_000);
  });

  it('spreads clients out: different jitter gives different delays', () => {
    const ds = new Set([0, 0.25, 0.5, 0.75].map((r) => backoffDelay(5, () => r)));
    expect(ds.size).toBe(4);
  });

  it('tolerates nonsense input', () => {
    expect(backoffDelay(0, () => 0.5)).toBe(backoffDelay(1, () => 0.5));
    expect(backoffDelay(-3, () => 2)).toBe(500);
    expect(Number.isFinite(backoffDelay(1e9, () => -1))).toBe(true);
  });
});

describe('describeState', () => {
  it('says what is going on, with the host message when refused', () => {
    expect(describeState({ kind: 'connected', hello })).toBe('Connected to studio');
    expect(describeState({ kind: 'unauthorized', error: unauthorized })).toContain('operator token does not match');
    expect(describeState({ kind: 'retrying', attempt: 1, reason: 'the host cannot be reached', delayMs: 1500 })).toBe(
      'Disconnected: the host cannot be reached. Retrying in 2 s',
    );
  });
});
