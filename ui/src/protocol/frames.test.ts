import { describe, expect, it } from 'vitest';
import { parseErrorShape, parseFrame, parseHelloOk } from './frames';

describe('parseFrame', () => {
  it('reads res and event frames as the host sends them', () => {
    expect(parseFrame('{"type":"res","id":"42","ok":true,"payload":{"online":true}}')).toEqual({
      type: 'res',
      id: '42',
      ok: true,
      payload: { online: true },
    });
    expect(
      parseFrame(
        '{"type":"res","id":"42","ok":false,"error":{"code":"NODE_NOT_FOUND","message":"no node","details":{"selector":"x"},"retryable":false}}',
      ),
    ).toEqual({
      type: 'res',
      id: '42',
      ok: false,
      error: { code: 'NODE_NOT_FOUND', message: 'no node', details: { selector: 'x' }, retryable: false },
    });
    expect(
      parseFrame('{"type":"event","event":"presence","payload":{"change":"remove","key":"k"},"seq":15,"stateVersion":{"presence":8,"health":0}}'),
    ).toEqual({ type: 'event', event: 'presence', payload: { change: 'remove', key: 'k' }, seq: 15, stateVersion: { presence: 8, health: 0 } });
  });

  it('keeps unknown error codes verbatim and tolerates a missing code or message', () => {
    expect(parseErrorShape({ code: 'CAMERA_DISABLED', message: 'off' })).toEqual({ code: 'CAMERA_DISABLED', message: 'off' });
    expect(parseErrorShape({ message: 'only text' })).toEqual({ code: 'UNKNOWN', message: 'only text' });
    expect(parseErrorShape({ code: 'X' })).toEqual({ code: 'X', message: '' });
    expect(parseErrorShape({})).toBeUndefined();
    expect(parseErrorShape('boom')).toBeUndefined();
  });

  it('returns null for everything else', () => {
    for (const bad of [undefined, 5, '', 'nope', '[]', '{"type":"cancel","id":"1"}', '{"type":"res","id":"","ok":true}']) {
      expect(parseFrame(bad)).toBeNull();
    }
  });
});

describe('parseHelloOk', () => {
  it('reads hello-ok and fills what an older host leaves out', () => {
    const h = parseHelloOk({
      type: 'hello-ok',
      protocol: 4,
      server: { version: '0.1.0', connId: 'c2', hostId: 'h', name: 'studio' },
      features: { methods: ['status', 7], events: ['tick'] },
      snapshot: {
        uptimeMs: 99,
        presence: [{ key: 'k1', displayName: 'Kitchen', platform: 'linux', role: 'node', mode: 'node', lastSeenMs: 5 }, { nokey: 1 }],
        stateVersion: { presence: 1, health: 0 },
      },
      policy: { maxPayload: 1, maxBufferedBytes: 2, tickIntervalMs: 3 },
    });
    expect(h?.features.methods).toEqual(['status']);
    expect(h?.snapshot.presence).toEqual([{ key: 'k1', displayName: 'Kitchen', platform: 'linux', role: 'node', mode: 'node', lastSeenMs: 5 }]);
    expect(h?.policy.tickIntervalMs).toBe(3);
    const minimal = parseHelloOk({ type: 'hello-ok' });
    expect(minimal?.policy.tickIntervalMs).toBe(15000);
    expect(minimal?.snapshot.stateVersion).toEqual({ presence: 0, health: 0 });
  });

  it('refuses anything that is not hello-ok', () => {
    expect(parseHelloOk({ type: 'hello' })).toBeUndefined();
    expect(parseHelloOk(null)).toBeUndefined();
    expect(parseHelloOk([])).toBeUndefined();
  });
});
