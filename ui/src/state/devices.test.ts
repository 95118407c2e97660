import { describe, expect, it } from 'vitest';
import {
  type DevicesAction,
  type DevicesState,
  clientRows,
  describePresence,
  deviceRows,
  devicesReducer,
  formatAgo,
  initialDevices,
  PENDING_SHOWN,
  pendingRows,
  pendingView,
  revokedRows,
} from './devices';

const KITCHEN = '56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c';
const PHONE = 'c6107c1842c20449a2e69adba9606b0780be1d0c9cdca5fd2fb771b388d2eadb';
const OLD = 'ab'.repeat(32);

function run(actions: DevicesAction[], from: DevicesState = initialDevices): DevicesState {
  return actions.reduce(devicesReducer, from);
}

const loaded = run([
  {
    type: 'nodes',
    payload: [
      {
        nodeId: KITCHEN,
        displayName: 'Kitchen Mac',
        platform: 'linux',
        online: true,
        lastSeenMs: 1000,
        commands: ['location.get', 'device.info'],
      },
    ],
  },
  {
    type: 'pairs',
    payload: {
      paired: [
        { deviceId: KITCHEN, displayName: 'Kitchen Mac', platform: 'linux', role: 'node', pairedAtMs: 10, lastSeenMs: 900, revoked: false, online: true },
        { deviceId: OLD, displayName: 'Old laptop', platform: 'windows', role: 'node', pairedAtMs: 5, revoked: true, online: false },
      ],
      pending: [
        {
          requestId: '9f2c4e01aa',
          deviceId: PHONE,
          displayName: "Ana's iPhone",
          platform: 'ios',
          role: 'node',
          requestedAtMs: 2000,
          remoteAddr: '192.168.1.23',
          verificationCode: '048 213',
        },
      ],
    },
  },
]);

describe('loading', () => {
  it('merges node.list and device.pair.list', () => {
    expect(loaded.loaded).toEqual({ nodes: true, pairs: true });
    expect(deviceRows(loaded)).toEqual([
      {
        deviceId: KITCHEN,
        displayName: 'Kitchen Mac',
        platform: 'linux',
        online: true,
        lastSeenMs: 1000,
        commands: ['location.get', 'device.info'],
        pairedAtMs: 10,
      },
    ]);
    expect(pendingRows(loaded)).toEqual([
      {
        requestId: '9f2c4e01aa',
        deviceId: PHONE,
        displayName: "Ana's iPhone",
        platform: 'ios',
        verificationCode: '048 213',
        requestedAtMs: 2000,
        remoteAddr: '192.168.1.23',
      },
    ]);
    expect(revokedRows(loaded).map((r) => r.displayName)).toEqual(['Old laptop']);
  });

  it('shows a paired node that node.list has not listed yet, as offline without commands', () => {
    const s = run([{ type: 'pairs', payload: { paired: [{ deviceId: PHONE, displayName: 'Phone', platform: 'ios', role: 'node', revoked: false, online: false }], pending: [] } }]);
    expect(deviceRows(s)).toEqual([{ deviceId: PHONE, displayName: 'Phone', platform: 'ios', online: false, commands: [] }]);
  });

  it('survives malformed lists from the host', () => {
    const s = run([
      { type: 'nodes', payload: { not: 'an array' } },
      { type: 'nodes', payload: [null, 7, { nodeId: 3 }, { displayName: 'no id' }, { nodeId: PHONE, online: 'yes', commands: ['a', 1] }] },
      { type: 'pairs', payload: { paired: 'x', pending: [{ requestId: 'r' }, {}] } },
      { type: 'pairs', payload: null },
    ]);
    expect(deviceRows(s)).toEqual([{ deviceId: PHONE, displayName: PHONE.slice(0, 10), platform: 'unknown', online: false, commands: ['a'] }]);
    expect(pendingRows(s)).toEqual([]);
  });
});

describe('events', () => {
  it('node.status flips online and records when', () => {
    const off = devicesReducer(loaded, {
      type: 'event',
      event: 'node.status',
      payload: { nodeId: KITCHEN, displayName: 'Kitchen Mac', online: false, ts: 5000 },
    });
    expect(deviceRows(off)[0]).toMatchObject({ online: false, lastSeenMs: 5000, commands: ['location.get', 'device.info'] });
    expect(off.nodesStale).toBe(false);
    const on = devicesReducer(off, { type: 'event', event: 'node.status', payload: { nodeId: KITCHEN, displayName: 'Kitchen Mac', online: true, ts: 6000 } });
    expect(deviceRows(on)[0]).toMatchObject({ online: true, lastSeenMs: 6000 });
    // back online: it may advertise other commands, which only node.list tells
    expect(on.nodesStale).toBe(true);
    expect(devicesReducer(on, { type: 'nodes', payload: [] }).nodesStale).toBe(false);
  });

  it('a pairing request appears with its verification code and goes when resolved', () => {
    const req = {
      requestId: '4db110cf09',
      deviceId: OLD.replace('ab', 'cd'),
      publicKey: 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg',
      displayName: 'e2e-node',
      platform: 'linux',
      role: 'node',
      remoteIp: '127.0.0.1',
      ts: 3000,
      verificationCode: '123 456',
    };
    let s = devicesReducer(loaded, { type: 'event', event: 'device.pair.requested', payload: req });
    expect(pendingRows(s).map((p) => [p.displayName, p.verificationCode, p.requestedAtMs, p.remoteAddr])).toEqual([
      ["Ana's iPhone", '048 213', 2000, '192.168.1.23'],
      ['e2e-node', '123 456', 3000, '127.0.0.1'],
    ]);
    s = devicesReducer(s, {
      type: 'event',
      event: 'device.pair.resolved',
      payload: { requestId: '4db110cf09', deviceId: req.deviceId, decision: 'approved', ts: 4000 },
    });
    expect(pendingRows(s).map((p) => p.requestId)).toEqual(['9f2c4e01aa']);
    // approved: listed right away (offline until its node.status), and node.list is due
    expect(deviceRows(s).find((r) => r.deviceId === req.deviceId)).toEqual({
      deviceId: req.deviceId,
      displayName: 'e2e-node',
      platform: 'linux',
      online: false,
      commands: [],
      pairedAtMs: 4000,
    });
    expect(s.nodesStale).toBe(true);
    s = devicesReducer(s, { type: 'event', event: 'node.status', payload: { nodeId: req.deviceId, displayName: 'e2e-node', online: true, ts: 4100 } });
    expect(deviceRows(s).find((r) => r.deviceId === req.deviceId)).toMatchObject({ online: true, lastSeenMs: 4100 });
  });

  it('a rejected request just disappears', () => {
    const s = devicesReducer(loaded, {
      type: 'event',
      event: 'device.pair.resolved',
      payload: { requestId: '9f2c4e01aa', deviceId: PHONE, decision: 'rejected', ts: 1 },
    });
    expect(pendingRows(s)).toEqual([]);
    expect(deviceRows(s).map((r) => r.deviceId)).toEqual([KITCHEN]);
  });

  it('a request the host expired disappears, and nothing is paired', () => {
    const s = devicesReducer(loaded, {
      type: 'event',
      event: 'device.pair.resolved',
      payload: { requestId: '9f2c4e01aa', deviceId: PHONE, decision: 'expired', ts: 1 },
    });
    expect(pendingRows(s)).toEqual([]);
    expect(deviceRows(s).map((r) => r.deviceId)).toEqual([KITCHEN]);
  });

  it('past a handful of requests the newest are shown and the rest counted', () => {
    let s = initialDevices;
    for (let i = 0; i < 12; i++) {
      s = devicesReducer(s, {
        type: 'event',
        event: 'device.pair.requested',
        payload: {
          requestId: `r${i}`,
          deviceId: i.toString(16).padStart(64, '0'),
          displayName: `flood ${i}`,
          platform: 'linux',
          role: 'node',
          ts: 1000 + i,
        },
      });
    }
    const few = pendingView(s, false);
    expect(few.shown.map((p) => p.requestId)).toEqual(['r11', 'r10', 'r9', 'r8', 'r7']);
    expect(few.shown).toHaveLength(PENDING_SHOWN);
    expect(few.hidden).toBe(7);
    const all = pendingView(s, true);
    expect(all.shown).toHaveLength(12);
    expect(all.hidden).toBe(0);
    expect(pendingView(initialDevices, false)).toEqual({ shown: [], hidden: 0 });
  });

  it('presence follows stateVersion: applies V+1, ignores old versions, flags gaps', () => {
    const entry = {
      key: KITCHEN,
      deviceId: KITCHEN,
      displayName: 'Kitchen Mac',
      platform: 'linux',
      role: 'node',
      mode: 'node',
      connectedSinceMs: 100,
      lastSeenMs: 7000,
      lastActivityMs: 6500,
    };
    let s = devicesReducer(loaded, {
      type: 'presence-snapshot',
      entries: [{ key: 'conn:c7', displayName: 'Perch UI', platform: 'linux', role: 'operator', mode: 'ui', lastSeenMs: 1 }],
      version: 3,
      selfKey: 'conn:c7',
    });
    s = devicesReducer(s, { type: 'event', event: 'presence', payload: { change: 'upsert', entry }, presenceVersion: 4 });
    expect(s.presenceVersion).toBe(4);
    expect(s.presenceGap).toBe(false);
    // presence makes last seen and activity more precise
    expect(deviceRows(s)[0]).toMatchObject({ lastSeenMs: 7000, lastActivityMs: 6500 });
    // a replayed old version changes nothing
    const again = devicesReducer(s, { type: 'event', event: 'presence', payload: { change: 'remove', key: KITCHEN }, presenceVersion: 4 });
    expect(again).toBe(s);
    // a gap: applied, and flagged for a refetch
    const gap = devicesReducer(s, { type: 'event', event: 'presence', payload: { change: 'remove', key: KITCHEN }, presenceVersion: 9 });
    expect(gap.presenceGap).toBe(true);
    expect(gap.presenceVersion).toBe(9);
    expect(deviceRows(gap)[0]?.lastActivityMs).toBeUndefined();
    expect(clientRows(s)).toEqual([
      { key: 'conn:c7', displayName: 'Perch UI', platform: 'linux', role: 'operator', mode: 'ui', lastSeenMs: 1, self: true },
    ]);
    // a new snapshot clears the gap
    expect(devicesReducer(gap, { type: 'presence-snapshot', entries: [], version: 12 }).presenceGap).toBe(false);
  });

  it('ignores unknown events and malformed payloads (same state object)', () => {
    const cases: [string, unknown][] = [
      ['tick', { ts: 1 }],
      ['some.future.event', { a: 1 }],
      ['node.status', null],
      ['node.status', { nodeId: KITCHEN }],
      ['node.status', { online: true }],
      ['device.pair.requested', { requestId: 'x' }],
      ['device.pair.requested', 'nope'],
      ['device.pair.resolved', {}],
      ['presence', { change: 'upsert', entry: { no: 'key' } }],
      ['presence', { change: 'explode' }],
      ['presence', [1, 2]],
    ];
    for (const [event, payload] of cases) {
      expect(devicesReducer(loaded, { type: 'event', event, payload })).toBe(loaded);
    }
  });

  it('revoke moves a device to the revoked list; remove forgets it', () => {
    const revoked = devicesReducer(loaded, { type: 'revoked', deviceId: KITCHEN });
    expect(deviceRows(revoked)).toEqual([]);
    expect(revokedRows(revoked).map((r) => r.displayName)).toEqual(['Kitchen Mac', 'Old laptop']);
    const removed = devicesReducer(revoked, { type: 'removed', deviceId: OLD });
    expect(revokedRows(removed).map((r) => r.displayName)).toEqual(['Kitchen Mac']);
  });
});

describe('formatting', () => {
  const now = Date.UTC(2026, 0, 10, 12, 0, 0);
  it('formats last seen in words', () => {
    expect(formatAgo(undefined, now)).toBe('never');
    expect(formatAgo(now - 10_000, now)).toBe('just now');
    expect(formatAgo(now + 60_000, now)).toBe('just now'); // a clock ahead of ours
    expect(formatAgo(now - 50_000, now)).toBe('1 min ago');
    expect(formatAgo(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatAgo(now - 3 * 3600_000, now)).toBe('3 h ago');
    expect(formatAgo(now - 30 * 3600_000, now)).toBe('yesterday');
    expect(formatAgo(now - 4 * 86400_000, now)).toBe('4 days ago');
    expect(formatAgo(now - 40 * 86400_000, now)).toMatch(/^2025-12-0[01]$/);
  });

  it('describes presence', () => {
    expect(describePresence({ online: true }, now)).toBe('Online');
    expect(describePresence({ online: true, lastActivityMs: now - 30_000 }, now)).toBe('Online, in use');
    expect(describePresence({ online: true, lastActivityMs: now - 600_000 }, now)).toBe('Online, last used 10 min ago');
    expect(describePresence({ online: false, lastSeenMs: now - 7200_000 }, now)).toBe('Offline, last seen 2 h ago');
    expect(describePresence({ online: false }, now)).toBe('Offline, never connected');
  });
});
