import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PerchClient, RpcError, buildConnectParams, detectPlatform, socketUrl } from './client';
import type { ConnState } from './state';
import { helloOk, socketFactory } from '../test/fake-socket';

const TOKEN = 'tok-abcdefghijklmnop-secret';

function setup(opts: { random?: () => number; handshakeTimeoutMs?: number } = {}) {
  const sockets = socketFactory();
  const states: ConnState[] = [];
  const client = new PerchClient({
    url: 'ws://127.0.0.1:18789/',
    token: TOKEN,
    platform: 'linux',
    createSocket: sockets.factory,
    random: opts.random ?? (() => 0.5),
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 15_000,
  });
  client.onState((s) => states.push(s));
  return { client, sockets, states };
}

/** Runs the handshake on the latest socket. */
function admit(sockets: ReturnType<typeof socketFactory>, hello = helloOk()) {
  const ws = sockets.last();
  ws.challenge();
  ws.ok(ws.lastReq('connect').id, hello);
  return ws;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('handshake', () => {
  it('answers the challenge as a perch-ui operator and is connected only after hello-ok', () => {
    const { client, sockets } = setup();
    client.start();
    expect(client.state).toEqual({ kind: 'connecting', attempt: 0 });
    const ws = sockets.last();
    expect(ws.url).toBe('ws://127.0.0.1:18789/');
    expect(ws.sent).toHaveLength(0); // nothing before the challenge

    ws.challenge();
    const req = ws.lastReq('connect');
    expect(req.params).toMatchObject({
      minProtocol: 4,
      maxProtocol: 4,
      role: 'operator',
      client: { id: 'perch-ui', mode: 'ui', platform: 'linux' },
      auth: { token: TOKEN },
    });
    expect(client.state.kind).toBe('connecting');

    ws.ok(req.id, helloOk());
    expect(client.state.kind).toBe('connected');
    if (client.state.kind === 'connected') expect(client.state.hello.server.name).toBe('studio');
    expect(client.supports('chat.send')).toBe(true);
    expect(client.supports('settings.get')).toBe(false);
  });

  it('does not claim to be connected when the answer to connect is not hello-ok', () => {
    const { client, sockets, states } = setup();
    client.start();
    const ws = sockets.last();
    ws.challenge();
    ws.ok(ws.lastReq('connect').id, { type: 'something-else' });
    expect(states.some((s) => s.kind === 'connected')).toBe(false);
    expect(ws.closed).not.toBeNull();
    expect(client.state).toMatchObject({ kind: 'retrying', attempt: 1, reason: 'the host sent an unreadable hello' });
  });

  it('a wrong token ends in unauthorized with the host message, and no retry', () => {
    const { client, sockets } = setup();
    client.start();
    const ws = sockets.last();
    ws.challenge();
    ws.fail(ws.lastReq('connect').id, {
      code: 'UNAUTHORIZED',
      message: 'operator token does not match',
      details: { reason: 'token-mismatch' },
    });
    expect(client.state).toEqual({
      kind: 'unauthorized',
      error: { code: 'UNAUTHORIZED', message: 'operator token does not match', details: { reason: 'token-mismatch' } },
    });
    // the host's close that follows changes nothing, and no new socket is ever opened
    ws.event('connection.closing', { error: { code: 'UNAUTHORIZED', message: 'x' }, reconnect: false });
    ws.serverClose(1008, 'UNAUTHORIZED');
    vi.advanceTimersByTime(120_000);
    expect(sockets.sockets).toHaveLength(1);
    expect(client.state.kind).toBe('unauthorized');
  });

  it('a new token after unauthorized connects afresh with that token', () => {
    const { client, sockets } = setup();
    client.start();
    let ws = sockets.last();
    ws.challenge();
    ws.fail(ws.lastReq('connect').id, { code: 'UNAUTHORIZED', message: 'nope' });
    client.setToken('the-right-token-0123456789');
    expect(client.state).toEqual({ kind: 'connecting', attempt: 0 });
    expect(sockets.sockets).toHaveLength(2);
    ws = sockets.last();
    ws.challenge();
    expect(ws.lastReq('connect').params).toMatchObject({ auth: { token: 'the-right-token-0123456789' } });
    ws.ok(ws.lastReq('connect').id, helloOk());
    expect(client.state.kind).toBe('connected');
  });

  it('a protocol mismatch stops instead of retrying', () => {
    const { client, sockets } = setup();
    client.start();
    const ws = sockets.last();
    ws.challenge();
    ws.fail(ws.lastReq('connect').id, { code: 'PROTOCOL_MISMATCH', message: 'update the older side' });
    expect(client.state).toEqual({ kind: 'closed', error: { code: 'PROTOCOL_MISMATCH', message: 'update the older side' } });
    vi.advanceTimersByTime(120_000);
    expect(sockets.sockets).toHaveLength(1);
  });

  it('gives up on a socket whose host never sends the challenge, then retries', () => {
    const { client, sockets } = setup({ handshakeTimeoutMs: 2000 });
    client.start();
    vi.advanceTimersByTime(2000);
    expect(sockets.last().closed).not.toBeNull();
    expect(client.state).toMatchObject({ kind: 'retrying', attempt: 1, reason: 'the host did not complete the handshake in time' });
  });

  it('builds connect params with the token only in auth.token', () => {
    const p = buildConnectParams({ token: TOKEN, platform: 'macos' });
    const text = JSON.stringify(p);
    expect(text.split(TOKEN)).toHaveLength(2);
    expect(p.auth).toEqual({ token: TOKEN });
  });

  it('never writes the token to the console', () => {
    const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) => vi.spyOn(console, m).mockImplementation(() => {}));
    const { client, sockets } = setup();
    client.start();
    admit(sockets);
    sockets.last().deliver('{broken');
    sockets.last().serverClose(1006);
    vi.advanceTimersByTime(60_000);
    for (const s of spies) {
      for (const call of s.mock.calls) expect(JSON.stringify(call)).not.toContain(TOKEN);
      s.mockRestore();
    }
  });
});

describe('requests', () => {
  it('correlates answers that come back out of order', async () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    const a = client.call('node.list');
    const b = client.call('device.pair.list', { x: 1 });
    const [ra, rb] = ws.sent.slice(-2) as { id: string; method: string; params?: unknown }[];
    expect(ra?.method).toBe('node.list');
    expect(ra && 'params' in ra).toBe(false);
    expect(rb).toMatchObject({ method: 'device.pair.list', params: { x: 1 } });
    expect(ra?.id).not.toBe(rb?.id);
    ws.ok(rb!.id, { paired: [], pending: [] });
    ws.ok(ra!.id, [{ nodeId: 'n1' }]);
    await expect(a).resolves.toEqual([{ nodeId: 'n1' }]);
    await expect(b).resolves.toEqual({ paired: [], pending: [] });
  });

  it('rejects with the host error code, message and details', async () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    const p = client.call('node.describe', { nodeId: 'ab' });
    ws.fail(ws.lastReq('node.describe').id, {
      code: 'NODE_NOT_FOUND',
      message: 'no node matches "ab"',
      details: { selector: 'ab' },
    });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ code: 'NODE_NOT_FOUND', message: 'no node matches "ab"', details: { selector: 'ab' } });
  });

  it('times out a call, sends cancel, and ignores the late answer', async () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    const p = client.call('status', undefined, { timeoutMs: 1000 });
    const id = ws.lastReq('status').id;
    const caught = p.catch((e: unknown) => e);
    vi.advanceTimersByTime(1000);
    expect(await caught).toMatchObject({ code: 'TIMEOUT' });
    expect(ws.sent[ws.sent.length - 1]).toEqual({ type: 'cancel', id });
    ws.ok(id, { late: true }); // nothing to resolve; must not throw
    expect(client.state.kind).toBe('connected');
  });

  it('refuses calls while not connected', async () => {
    const { client } = setup();
    await expect(client.call('status')).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
    client.start();
    await expect(client.call('status')).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
  });

  it('fails pending calls when the connection drops', async () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    const p = client.call('chat.send', { message: 'hi' }).catch((e: unknown) => e);
    ws.serverClose(1006);
    expect(await p).toMatchObject({ code: 'CONNECTION_LOST' });
  });
});

describe('events and bad input', () => {
  it('delivers events by name and to * listeners; a throwing listener does not stop the others', () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    const named = vi.fn();
    const any = vi.fn();
    client.on('node.status', () => {
      throw new Error('view bug');
    });
    client.on('node.status', named);
    client.on('*', any);
    ws.event('node.status', { nodeId: 'n1', online: true }, { seq: 5 });
    expect(named).toHaveBeenCalledWith({ nodeId: 'n1', online: true }, expect.objectContaining({ event: 'node.status', seq: 5 }));
    expect(any).toHaveBeenCalledTimes(1);
    ws.event('some.future.event', { whatever: [1, 2] });
    expect(any).toHaveBeenCalledTimes(2);
    expect(named).toHaveBeenCalledTimes(1);
    expect(client.state.kind).toBe('connected');
  });

  it('unsubscribes', () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    const fn = vi.fn();
    const off = client.on('tick', fn);
    ws.event('tick', { ts: 1 });
    off();
    ws.event('tick', { ts: 2 });
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('drops malformed frames without crashing and keeps working', async () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    const any = vi.fn();
    client.on('*', any);
    const bad: unknown[] = [
      '{not json',
      '[1,2,3]',
      'null',
      '42',
      JSON.stringify({ type: 'res', ok: true }), // no id
      JSON.stringify({ type: 'res', id: 'r1', ok: true, error: { code: 'X', message: 'm' } }), // both
      JSON.stringify({ type: 'res', id: 'r1', ok: false }), // no error
      JSON.stringify({ type: 'res', id: 'r1', ok: 'yes' }),
      JSON.stringify({ type: 'event', payload: {} }), // no name
      JSON.stringify({ type: 'event', event: 7 }),
      JSON.stringify({ type: 'req', id: '1', method: 'x' }), // the host sends no requests
      JSON.stringify({ type: 'bogus' }),
    ];
    for (const b of bad) ws.deliver(b);
    ws.deliverRaw(new ArrayBuffer(8)); // a binary message
    ws.deliverRaw(undefined);
    expect(client.droppedFrames).toBe(bad.length + 2);
    expect(any).not.toHaveBeenCalled();
    expect(client.state.kind).toBe('connected');

    // events with odd payloads still reach listeners as they are; the reducers deal with them
    ws.event('presence', 'not an object');
    expect(any).toHaveBeenCalledTimes(1);

    const p = client.call('status');
    ws.ok(ws.lastReq('status').id, { ok: 1 });
    await expect(p).resolves.toEqual({ ok: 1 });
  });

  it('ignores events before hello-ok, except that the challenge starts the handshake', () => {
    const { client, sockets } = setup();
    client.start();
    const any = vi.fn();
    client.on('*', any);
    const ws = sockets.last();
    ws.event('tick', { ts: 1 });
    ws.challenge();
    ws.challenge(); // a second challenge does not send a second connect
    expect(ws.sent.filter((f) => f.method === 'connect')).toHaveLength(1);
    expect(any).not.toHaveBeenCalled();
  });
});

describe('reconnecting', () => {
  it('retries with capped exponential backoff and reconnects', () => {
    const { client, sockets, states } = setup({ random: () => 0 });
    client.start();
    admit(sockets);
    sockets.last().serverClose(1006);
    expect(client.state).toEqual({ kind: 'retrying', attempt: 1, reason: 'the host cannot be reached', delayMs: 250 });
    // consecutive failures: the window doubles; with jitter 0 the delay is half the ceiling
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const s = client.state;
      if (s.kind !== 'retrying') throw new Error(`expected retrying, got ${s.kind}`);
      delays.push(s.delayMs);
      vi.advanceTimersByTime(s.delayMs - 1);
      expect(client.state.kind).toBe('retrying');
      vi.advanceTimersByTime(1);
      expect(client.state.kind).toBe('connecting');
      sockets.last().serverClose(1006);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
    expect(sockets.sockets).toHaveLength(11);

    // back online: the counter resets
    const s = client.state;
    if (s.kind !== 'retrying') throw new Error('expected retrying');
    vi.advanceTimersByTime(s.delayMs);
    admit(sockets);
    expect(client.state.kind).toBe('connected');
    sockets.last().serverClose(1006);
    expect(client.state).toMatchObject({ kind: 'retrying', attempt: 1, delayMs: 250 });
    expect(states.filter((x) => x.kind === 'connected')).toHaveLength(2);
  });

  it('uses the reason from connection.closing or shutdown', () => {
    const { client, sockets } = setup();
    client.start();
    let ws = admit(sockets);
    ws.event('shutdown', { reason: 'host shutting down' });
    ws.serverClose(1001);
    expect(client.state).toMatchObject({ kind: 'retrying', reason: 'the host is shutting down' });
    vi.advanceTimersByTime(60_000);
    ws = admit(sockets);
    ws.event('connection.closing', { error: { code: 'TIMEOUT', message: 'tick timeout' }, reconnect: true });
    ws.serverClose(4000);
    expect(client.state).toMatchObject({ kind: 'retrying', reason: 'tick timeout' });
  });

  it('closes a silent connection after two tick intervals and retries', () => {
    const { client, sockets, states } = setup();
    client.start();
    const ws = admit(sockets, helloOk({ policy: { maxPayload: 1, maxBufferedBytes: 1, tickIntervalMs: 1000 } }));
    vi.advanceTimersByTime(3000);
    ws.event('tick', { ts: 2 });
    vi.advanceTimersByTime(3000);
    expect(client.state.kind).toBe('connected'); // traffic keeps it alive
    vi.advanceTimersByTime(5000);
    expect(ws.closed?.code).toBe(4000);
    expect(states[states.length - 1]).toMatchObject({ kind: 'retrying', attempt: 1, reason: 'the host stopped answering' });
  });

  it('stop() closes and never reconnects', () => {
    const { client, sockets } = setup();
    client.start();
    const ws = admit(sockets);
    client.stop();
    expect(client.state).toEqual({ kind: 'closed' });
    expect(ws.closed).not.toBeNull();
    vi.advanceTimersByTime(120_000);
    expect(sockets.sockets).toHaveLength(1);
  });

  it('a socket that cannot even be created is retried', () => {
    let n = 0;
    const sockets = socketFactory();
    const client = new PerchClient({
      url: 'ws://x/',
      token: TOKEN,
      platform: 'linux',
      random: () => 0,
      createSocket: (url) => {
        if (n++ === 0) throw new Error('SecurityError');
        return sockets.factory(url);
      },
    });
    client.start();
    expect(client.state).toMatchObject({ kind: 'retrying', attempt: 1, reason: 'SecurityError' });
    vi.advanceTimersByTime(250);
    expect(client.state.kind).toBe('connecting');
    expect(sockets.sockets).toHaveLength(1);
  });
});

describe('helpers', () => {
  it('derives the socket URL from the page', () => {
    expect(socketUrl({ protocol: 'http:', host: '127.0.0.1:18789' })).toBe('ws://127.0.0.1:18789/');
    expect(socketUrl({ protocol: 'https:', host: 'perch.example:443' })).toBe('wss://perch.example:443/');
  });

  it('names the platform in the host vocabulary', () => {
    expect(detectPlatform({ userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)', platform: 'MacIntel' })).toBe('macos');
    expect(detectPlatform({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64)', platform: 'Linux x86_64' })).toBe('linux');
    expect(detectPlatform({ userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64)', platform: 'Win32' })).toBe('windows');
    expect(detectPlatform({ userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8)', platform: 'Linux armv8l' })).toBe('android');
    expect(detectPlatform({ userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)', platform: 'iPhone' })).toBe('ios');
    expect(detectPlatform({ userAgentData: { platform: 'macOS' } })).toBe('macos');
    expect(detectPlatform(undefined)).toBe('web');
  });
});
