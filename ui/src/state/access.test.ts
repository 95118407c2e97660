import { describe, expect, it } from 'vitest';
import { accessReducer, describeOutcome, describeRequester, initialAccess, parseAccessPage } from './access';

const NODE = '56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c';
const OPERATOR = 'c6107c1842c20449a2e69adba9606b0780be1d0c9cdca5fd2fb771b388d2eadb';

const first = {
  nodeId: NODE,
  nextBefore: '41',
  entries: [
    {
      atMs: 2000,
      durationMs: 12,
      command: 'location.get',
      outcome: 'ok',
      requester: { kind: 'turn', sessionKey: 'main', turnId: 't-1' },
    },
    {
      atMs: 1000,
      durationMs: 0,
      command: 'system.run',
      outcome: 'refused',
      errorCode: 'COMMAND_NOT_ALLOWED',
      requester: { kind: 'operator', label: 'perch-cli' },
    },
  ],
};

describe('access record', () => {
  it('reads a page and says each row in words', () => {
    const s = accessReducer(initialAccess, { type: 'first', payload: first });
    expect(s.loaded).toBe(true);
    expect(s.nextBefore).toBe('41');
    expect(s.entries.map((e) => e.command)).toEqual(['location.get', 'system.run']);
    expect(describeRequester(s.entries[0]!.requester)).toBe('Assistant · session main');
    expect(describeRequester(s.entries[1]!.requester)).toBe('perch-cli');
    expect(describeRequester({ kind: 'operator', label: 'Web UI', deviceId: OPERATOR })).toBe('Web UI (c6107c1842)');
    expect(describeOutcome(s.entries[0]!)).toBe('ok');
    expect(describeOutcome(s.entries[1]!)).toBe('refused by the host: COMMAND_NOT_ALLOWED');
    expect(describeOutcome({ outcome: 'failed', errorCode: 'TIMEOUT' })).toBe('failed: TIMEOUT');
    expect(describeOutcome({ outcome: 'failed' })).toBe('failed');
  });

  it('appends older pages and stops at the end', () => {
    const s1 = accessReducer(initialAccess, { type: 'first', payload: first });
    const s2 = accessReducer(s1, {
      type: 'older',
      payload: {
        nodeId: NODE,
        entries: [{ atMs: 500, durationMs: 3, command: 'device.info', outcome: 'failed', errorCode: 'TIMEOUT', requester: { kind: 'turn', sessionKey: 'work', turnId: 't-0' } }],
      },
    });
    expect(s2.entries.map((e) => e.atMs)).toEqual([2000, 1000, 500]);
    expect(s2.nextBefore).toBeUndefined();
    // A reload starts over.
    const s3 = accessReducer(s2, { type: 'first', payload: first });
    expect(s3.entries).toHaveLength(2);
  });

  it('skips rows it cannot read instead of failing', () => {
    const page = parseAccessPage({
      nodeId: NODE,
      entries: [
        null,
        { atMs: 1, command: 'x', outcome: 'maybe', requester: { kind: 'turn' } },
        { atMs: 1, command: 'x', outcome: 'ok', requester: { kind: 'alien' } },
        { command: 'x', outcome: 'ok', requester: { kind: 'operator', label: 'a' } },
        { atMs: 7, command: 'device.status', outcome: 'ok', requester: { kind: 'operator', label: 'a' } },
      ],
    });
    expect(page.entries).toHaveLength(1);
    expect(page.entries[0]).toMatchObject({ atMs: 7, durationMs: 0, command: 'device.status' });
    expect(parseAccessPage('nonsense')).toEqual({ nodeId: '', entries: [] });
    expect(parseAccessPage({ entries: 'nope' }).entries).toEqual([]);
  });
});
