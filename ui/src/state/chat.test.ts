import { describe, expect, it } from 'vitest';
import { type ChatAction, type ChatState, chatReducer, explainError, initialChat, othersBusy, rowsFromHistory, validSessionKey } from './chat';

function run(actions: ChatAction[], from: ChatState = initialChat()): ChatState {
  return actions.reduce(chatReducer, from);
}

const chat = (payload: unknown): ChatAction => ({ type: 'event', event: 'chat', payload });
const turn = (payload: unknown): ChatAction => ({ type: 'event', event: 'agent.turn', payload });

describe('a turn from this window', () => {
  it('streams deltas and tool chips into one answer, then settles on the result', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { session: {}, messages: [] } },
      { type: 'send', localId: 'l1', message: 'Where am I?', atMs: 1000 },
    ]);
    expect(s.rows).toEqual([
      { kind: 'user', id: 'u-l1', text: 'Where am I?', atMs: 1000 },
      { kind: 'assistant', id: 'a-l1', text: '', tools: [], streaming: true, atMs: 1000 },
    ]);
    s = run(
      [
        chat({ kind: 'tool', turnId: 'T1', name: 'location.get', state: 'started' }),
        chat({ kind: 'tool', turnId: 'T1', name: 'location.get', state: 'ok' }),
        chat({ kind: 'delta', turnId: 'T1', text: 'You are ' }),
        chat({ kind: 'delta', turnId: 'T1', text: 'at home.' }),
      ],
      s,
    );
    expect(s.own?.turnId).toBe('T1');
    expect(s.rows[1]).toEqual({
      kind: 'assistant',
      id: 'a-l1',
      turnId: 'T1',
      text: 'You are at home.',
      tools: [{ name: 'location.get', state: 'ok' }],
      streaming: true,
      atMs: 1000,
    });
    s = chatReducer(s, {
      type: 'sent',
      localId: 'l1',
      payload: { sessionKey: 'main', turnId: 'T1', text: 'You are at home.', toolCalls: 1, inputTokens: 9, outputTokens: 4 },
    });
    expect(s.own).toBeNull();
    expect(s.rows[1]).toMatchObject({ streaming: false, text: 'You are at home.', turnId: 'T1' });
    expect(s.sessionsStale).toBe(true);
  });

  it('the final text wins over the streamed one', () => {
    const s = run([
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      chat({ kind: 'delta', turnId: 'T1', text: 'Hel' }),
      { type: 'sent', localId: 'l1', payload: { turnId: 'T1', text: 'Hello!' } },
    ]);
    expect(s.rows[1]).toMatchObject({ text: 'Hello!', streaming: false });
  });

  it('two tools of the same name get two chips', () => {
    const s = run([
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      chat({ kind: 'tool', turnId: 'T1', name: 'device.info', state: 'started' }),
      chat({ kind: 'tool', turnId: 'T1', name: 'device.info', state: 'failed' }),
      chat({ kind: 'tool', turnId: 'T1', name: 'device.info', state: 'started' }),
    ]);
    expect(s.rows[1]).toMatchObject({ tools: [{ name: 'device.info', state: 'failed' }, { name: 'device.info', state: 'started' }] });
  });

  it('an error before any text replaces the answer with an error row carrying the code', () => {
    const s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      {
        type: 'failed',
        localId: 'l1',
        error: { code: 'CREDENTIAL_MISSING', message: 'tier "default" is not configured', details: { tier: 'default' } },
      },
    ]);
    expect(s.rows).toEqual([
      { kind: 'user', id: 'u-l1', text: 'hi', atMs: 1000 },
      {
        kind: 'error',
        id: 'e-l1',
        code: 'CREDENTIAL_MISSING',
        message: 'tier "default" is not configured',
        details: { tier: 'default' },
        atMs: 1000,
      },
    ]);
    expect(s.own).toBeNull();
    expect(s.historyStale).toBe(false);
  });

  it('an error after some text keeps the text and adds the error', () => {
    const s = run([
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      chat({ kind: 'delta', turnId: 'T9', text: 'Partial' }),
      { type: 'failed', localId: 'l1', error: { code: 'MODEL_ERROR', message: 'stream stalled', details: { turnId: 'T9' } } },
    ]);
    expect(s.rows.map((r) => r.kind)).toEqual(['user', 'assistant', 'error']);
    expect(s.rows[1]).toMatchObject({ text: 'Partial', streaming: false });
    expect(s.rows[2]).toMatchObject({ code: 'MODEL_ERROR', turnId: 'T9' });
  });

  it('a dropped connection leaves the fate unknown: the transcript is re-read', () => {
    const s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      { type: 'failed', localId: 'l1', error: { code: 'CONNECTION_LOST', message: 'gone' } },
    ]);
    expect(s.historyStale).toBe(true);
  });

  it('one turn at a time; stale and foreign events are ignored', () => {
    let s = run([{ type: 'send', localId: 'l1', message: 'one', atMs: 1000 }]);
    expect(chatReducer(s, { type: 'send', localId: 'l2', message: 'two', atMs: 1000 })).toBe(s);
    s = chatReducer(s, chat({ kind: 'delta', turnId: 'T1', text: 'a' }));
    for (const p of [
      { kind: 'delta', turnId: 'T0', text: 'old turn' },
      { kind: 'delta', turnId: 'T1' },
      { kind: 'delta', text: 'no turn' },
      { kind: 'telepathy', turnId: 'T1' },
      { kind: 'tool', turnId: 'T1', name: 'x' },
      null,
      'text',
    ]) {
      expect(chatReducer(s, chat(p))).toBe(s);
    }
    expect(chatReducer(s, { type: 'sent', localId: 'other', payload: {} })).toBe(s);
    // no turn running: chat events have nowhere to go
    const idle = initialChat();
    expect(chatReducer(idle, chat({ kind: 'delta', turnId: 'T1', text: 'x' }))).toBe(idle);
  });
});

describe('telling our turn from others (agent.turn reaches the caller too)', () => {
  it('a turn the host refuses at once: its agent.turn events are ours, and the error survives reloads', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'Hello', atMs: 1000 },
      // what the host sends for CREDENTIAL_MISSING: started, failed, then the error answer
      turn({ turnId: 'X', sessionKey: 'main', state: 'started', ts: 1 }),
      turn({ turnId: 'X', sessionKey: 'main', state: 'failed', error: { code: 'CREDENTIAL_MISSING', message: 'm' }, ts: 2 }),
      { type: 'failed', localId: 'l1', error: { code: 'CREDENTIAL_MISSING', message: 'model tier "default" is not configured' } },
    ]);
    expect(othersBusy(s)).toBe(false);
    expect(s.historyStale).toBe(false); // nothing of another client's to fetch
    expect(s.mine).toEqual(['X']);
    expect(s.rows.map((r) => [r.kind, r.turnId])).toEqual([
      ['user', 'X'],
      ['error', 'X'],
    ]);
    // a late copy of the event changes nothing
    expect(chatReducer(s, turn({ turnId: 'X', sessionKey: 'main', state: 'failed', ts: 3 }))).toBe(s);
    // another client's turn later makes a reload; the refused question and its error stay, in time order
    s = run(
      [
        turn({ turnId: 'Y', sessionKey: 'main', state: 'started', ts: 4 }),
        turn({ turnId: 'Y', sessionKey: 'main', state: 'finished', preview: 'ok', ts: 5 }),
      ],
      s,
    );
    expect(s.historyStale).toBe(true);
    s = chatReducer(s, {
      type: 'history',
      sessionKey: 'main',
      payload: {
        messages: [
          { seq: 1, turnId: 'W', role: 'user', content: 'earlier', createdAtMs: 500 },
          { seq: 2, turnId: 'Y', role: 'user', content: 'from the phone', createdAtMs: 2000 },
          { seq: 3, turnId: 'Y', role: 'assistant', content: 'ok', createdAtMs: 2100 },
        ],
      },
    });
    expect(s.rows.map((r) => (r.kind === 'error' ? `error:${r.code}` : r.kind === 'user' ? r.text : `assistant:${r.text}`))).toEqual([
      'earlier',
      'Hello',
      'error:CREDENTIAL_MISSING',
      'from the phone',
      'assistant:ok',
    ]);
  });

  it('with two candidates, the chat event names ours; the other one ending reloads the transcript', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      turn({ turnId: 'Y', sessionKey: 'main', state: 'started', ts: 1 }),
      turn({ turnId: 'X', sessionKey: 'main', state: 'started', ts: 1 }),
      turn({ turnId: 'Y', sessionKey: 'main', state: 'finished', ts: 2 }),
    ]);
    expect(s.historyStale).toBe(false); // not yet known whose Y was
    s = chatReducer(s, chat({ kind: 'delta', turnId: 'X', text: 'hey' }));
    expect(s.historyStale).toBe(true); // Y was someone else's and it is done
    expect(s.others).toEqual({});
    s = chatReducer(s, { type: 'sent', localId: 'l1', payload: { turnId: 'X', text: 'hey' } });
    expect(chatReducer(s, turn({ turnId: 'X', sessionKey: 'main', state: 'finished', ts: 3 }))).toBe(s);
  });

  it('the result names ours when no chat event did', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      turn({ turnId: 'X', sessionKey: 'main', state: 'started', ts: 1 }),
      turn({ turnId: 'Y', sessionKey: 'main', state: 'started', ts: 1 }),
      turn({ turnId: 'X', sessionKey: 'main', state: 'finished', ts: 2 }),
      { type: 'sent', localId: 'l1', payload: { turnId: 'X', text: '' } },
    ]);
    expect(s.historyStale).toBe(false);
    expect(othersBusy(s)).toBe(true); // Y is still running elsewhere
    s = chatReducer(s, turn({ turnId: 'Y', sessionKey: 'main', state: 'finished', ts: 3 }));
    expect(s.historyStale).toBe(true);
  });

  it('a failed turn that the transcript recorded is shown once, from the transcript', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      { type: 'failed', localId: 'l1', error: { code: 'MODEL_ERROR', message: 'HTTP 500', details: { turnId: 'T' } } },
    ]);
    expect(s.localRows.map((r) => r.turnId)).toEqual(['T', 'T']);
    s = chatReducer(s, {
      type: 'history',
      sessionKey: 'main',
      payload: {
        messages: [
          { seq: 1, turnId: 'T', role: 'user', content: 'hi', createdAtMs: 1001 },
          { seq: 2, turnId: 'T', role: 'error', content: 'HTTP 500', createdAtMs: 1002 },
        ],
      },
    });
    expect(s.rows.map((r) => r.id)).toEqual(['h1', 'h2']);
  });

  it('local rows belong to their session', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      { type: 'failed', localId: 'l1', error: { code: 'CREDENTIAL_MISSING', message: 'x' } },
      { type: 'session', sessionKey: 'work' },
      { type: 'history-missing', sessionKey: 'work' },
    ]);
    expect(s.rows).toEqual([]);
  });
});

describe('turns from other clients (agent.turn)', () => {
  it('shows another client busy, then reloads the transcript when it finishes', () => {
    let s = run([{ type: 'history', sessionKey: 'main', payload: { messages: [] } }]);
    expect(s.historyStale).toBe(false);
    s = chatReducer(s, turn({ turnId: 'X1', sessionKey: 'main', state: 'started', ts: 1 }));
    expect(othersBusy(s)).toBe(true);
    s = chatReducer(s, turn({ turnId: 'X1', sessionKey: 'main', state: 'finished', preview: 'Done', ts: 2 }));
    expect(othersBusy(s)).toBe(false);
    expect(s.historyStale).toBe(true);
    expect(s.sessionsStale).toBe(true);
  });

  it('a turn in another session only refreshes the session list', () => {
    let s = run([{ type: 'history', sessionKey: 'main', payload: { messages: [] } }, { type: 'sessions-loaded' }]);
    s = chatReducer(s, turn({ turnId: 'X2', sessionKey: 'work', state: 'started', ts: 1 }));
    expect(othersBusy(s)).toBe(false);
    s = chatReducer(s, turn({ turnId: 'X2', sessionKey: 'work', state: 'failed', error: { code: 'MODEL_ERROR', message: 'x' }, ts: 2 }));
    expect(s.historyStale).toBe(false);
    expect(s.sessionsStale).toBe(true);
  });

  it('our own turn is not mistaken for another client once its id is known', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'send', localId: 'l1', message: 'hi', atMs: 1000 },
      turn({ turnId: 'T1', sessionKey: 'main', state: 'started', ts: 1 }),
    ]);
    expect(othersBusy(s)).toBe(false); // our own turn is running: no "someone else" banner
    s = chatReducer(s, chat({ kind: 'delta', turnId: 'T1', text: 'yo' }));
    expect(s.others).toEqual({});
    const fin = chatReducer(s, turn({ turnId: 'T1', sessionKey: 'main', state: 'finished', ts: 2 }));
    expect(fin).toBe(s);
    s = chatReducer(s, { type: 'sent', localId: 'l1', payload: { turnId: 'T1', text: 'yo' } });
    expect(othersBusy(s)).toBe(false);
    expect(s.historyStale).toBe(false);
  });

  it('a reconnect re-reads the transcript and forgets turns it can no longer follow', () => {
    let s = run([
      { type: 'history', sessionKey: 'main', payload: { messages: [] } },
      { type: 'sessions-loaded' },
      turn({ turnId: 'X1', sessionKey: 'main', state: 'started', ts: 1 }),
    ]);
    expect(s.historyStale).toBe(false);
    s = chatReducer(s, { type: 'reconnected' });
    expect(s).toMatchObject({ historyStale: true, sessionsStale: true, others: {} });
    expect(othersBusy(s)).toBe(false);
  });

  it('ignores malformed agent.turn payloads', () => {
    const s = initialChat();
    for (const p of [null, {}, { turnId: 'a' }, { turnId: 'a', sessionKey: 'main' }, { turnId: 'a', sessionKey: 'main', state: 'dancing' }]) {
      expect(chatReducer(s, turn(p))).toBe(s);
    }
  });
});

describe('history', () => {
  it('groups a turn into question, answer with tool chips, and error rows', () => {
    const rows = rowsFromHistory([
      { seq: 1, turnId: 'A', role: 'user', content: 'Where am I?', createdAtMs: 1 },
      { seq: 2, turnId: 'A', role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'location_get', arguments: '{}' }], createdAtMs: 2 },
      { seq: 3, turnId: 'A', role: 'tool', content: '{"lat":1}', toolCallId: 'c1', toolName: 'location_get', isError: false, createdAtMs: 3 },
      { seq: 4, turnId: 'A', role: 'assistant', content: 'At home.', createdAtMs: 4 },
      { seq: 5, turnId: 'B', role: 'user', content: 'And now?', createdAtMs: 5 },
      { seq: 6, turnId: 'B', role: 'error', content: 'model provider returned 429', createdAtMs: 6 },
      { seq: 7, turnId: 'C', role: 'assistant', content: 'orphan', toolCalls: 'not json', createdAtMs: 7 },
      { seq: 8, turnId: 'C', role: 'tool', content: 'boom', toolName: 'camera.snap', isError: true, createdAtMs: 8 },
      'garbage',
      { seq: 9, role: 'system?', content: 'unknown roles are skipped' },
    ]);
    expect(rows).toEqual([
      { kind: 'user', id: 'h1', text: 'Where am I?', turnId: 'A', atMs: 1 },
      { kind: 'assistant', id: 'h2', turnId: 'A', text: 'At home.', tools: [{ name: 'location_get', state: 'ok' }], streaming: false, atMs: 2 },
      { kind: 'user', id: 'h5', text: 'And now?', turnId: 'B', atMs: 5 },
      { kind: 'error', id: 'h6', message: 'model provider returned 429', turnId: 'B', atMs: 6 },
      { kind: 'assistant', id: 'h7', turnId: 'C', text: 'orphan', tools: [{ name: 'camera.snap', state: 'failed' }], streaming: false, atMs: 7 },
    ]);
    expect(rowsFromHistory(null)).toEqual([]);
  });

  it('switching sessions clears the rows and asks for that history; not while a turn runs', () => {
    let s = run([{ type: 'history', sessionKey: 'main', payload: { messages: [{ seq: 1, turnId: 'A', role: 'user', content: 'x' }] } }]);
    expect(s.rows).toHaveLength(1);
    const busy = chatReducer(s, { type: 'send', localId: 'l1', message: 'y', atMs: 1000 });
    expect(chatReducer(busy, { type: 'session', sessionKey: 'work' })).toBe(busy);
    // a history that arrives while our turn runs is older than our rows
    expect(chatReducer(busy, { type: 'history', sessionKey: 'main', payload: { messages: [] } })).toBe(busy);
    s = chatReducer(s, { type: 'session', sessionKey: 'work' });
    expect(s).toMatchObject({ sessionKey: 'work', rows: [], historyStale: true, historyLoaded: false });
    // a late answer for the old session is dropped
    expect(chatReducer(s, { type: 'history', sessionKey: 'main', payload: { messages: [{ seq: 1, role: 'user', content: 'x' }] } })).toBe(s);
    s = chatReducer(s, { type: 'history-missing', sessionKey: 'work' });
    expect(s).toMatchObject({ rows: [], historyStale: false, historyLoaded: true });
  });
});

describe('helpers', () => {
  it('validates session keys like the host', () => {
    for (const ok of ['main', 'work', 'node-abc:1', 'a.b_c', 'x'.repeat(64)]) expect(validSessionKey(ok)).toBe(true);
    for (const bad of ['', '-x', 'with space', 'ü', 'x'.repeat(65)]) expect(validSessionKey(bad)).toBe(false);
  });

  it('explains CREDENTIAL_MISSING with perch auth set', () => {
    expect(explainError('CREDENTIAL_MISSING')).toContain('perch auth set');
    expect(explainError('MODEL_ERROR')).toBeTruthy();
    expect(explainError('SOMETHING_NEW')).toBeUndefined();
  });
});
