import { useEffect, useReducer, useRef, useState } from 'preact/hooks';
import type { ErrorShape } from '../protocol/frames';
import { isObject, num, str } from '../protocol/frames';
import { toErrorShape } from '../protocol/client';
import { type ChatRow, chatReducer, initialChat, othersBusy, validSessionKey } from '../state/chat';
import { TIERS } from '../state/settings';
import { ErrorBox, NotAvailable, Waiting, isUnknownMethod } from '../app/components';
import { useConn, useEvent, useHello, useTitle } from '../app/hooks';

interface SessionInfo {
  sessionKey: string;
  updatedAtMs?: number;
  messageCount?: number;
}

function parseSessions(v: unknown): SessionInfo[] {
  if (!Array.isArray(v)) return [];
  const out: SessionInfo[] = [];
  for (const s of v) {
    if (!isObject(s)) continue;
    const key = str(s.sessionKey);
    if (!key) continue;
    const info: SessionInfo = { sessionKey: key };
    const u = num(s.updatedAtMs);
    if (u !== undefined) info.updatedAtMs = u;
    const c = num(s.messageCount);
    if (c !== undefined) info.messageCount = c;
    out.push(info);
  }
  return out;
}

const TURN_TIMEOUT_MS = 10 * 60_000;

function initialSession(): string {
  const q = new URLSearchParams(window.location.search).get('session');
  return q && validSessionKey(q) ? q : 'main';
}

function storedTier(): string {
  try {
    const t = window.localStorage.getItem('perch.tier');
    return t && (TIERS as readonly string[]).includes(t) ? t : 'default';
  } catch {
    return 'default';
  }
}

export function ChatPage() {
  useTitle('Chat');
  const { client, state: conn } = useConn();
  const hello = useHello();
  const [state, dispatch] = useReducer(chatReducer, undefined, () => initialChat(initialSession()));
  const [sessions, setSessions] = useState<SessionInfo[]>([]);
  const [tier, setTier] = useState(storedTier);
  const [draft, setDraft] = useState('');
  const [newSession, setNewSession] = useState<string | null>(null);
  const [pageError, setPageError] = useState<ErrorShape | null>(null);
  const localIds = useRef(0);
  const logRef = useRef<HTMLOListElement>(null);
  const inputRef = useRef<HTMLTextAreaElement>(null);

  useEvent('chat', (payload) => dispatch({ type: 'event', event: 'chat', payload }));
  useEvent('agent.turn', (payload) => dispatch({ type: 'event', event: 'agent.turn', payload }));

  // Every hello-ok: the lists may have moved on while this window was away.
  useEffect(() => {
    if (hello) dispatch({ type: 'reconnected' });
  }, [hello]);

  // Session list: on connect and whenever a turn ended somewhere.
  useEffect(() => {
    if (!hello || !state.sessionsStale) return;
    dispatch({ type: 'sessions-loaded' });
    client.call('sessions.list').then(
      (v) => setSessions(parseSessions(v)),
      (e: unknown) => {
        const err = toErrorShape(e);
        if (isUnknownMethod(err)) setPageError(err);
      },
    );
  }, [hello, client, state.sessionsStale]);

  // Transcript: on connect, on a session change, after another client's turn here; never
  // while this window's own turn streams (its rows are newer than any fetched transcript).
  useEffect(() => {
    if (!hello || state.own || !state.historyStale) return;
    const key = state.sessionKey;
    client.call('sessions.history', { sessionKey: key }).then(
      (v) => {
        setPageError(null);
        dispatch({ type: 'history', sessionKey: key, payload: v });
      },
      (e: unknown) => {
        const err = toErrorShape(e);
        // NOT_FOUND is a session without turns yet; anything else is said, above an empty list.
        setPageError(err.code === 'NOT_FOUND' ? null : err);
        if (!isUnknownMethod(err)) dispatch({ type: 'history-missing', sessionKey: key });
      },
    );
  }, [hello, client, state.sessionKey, state.historyStale, state.own]);

  // Keep the newest message in view.
  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [state.rows]);

  const send = () => {
    const message = draft.trim();
    if (!message || state.own || !hello) return;
    const localId = `l${++localIds.current}`;
    dispatch({ type: 'send', localId, message, atMs: Date.now() });
    setDraft('');
    const params: Record<string, unknown> = { sessionKey: state.sessionKey, message };
    if (tier !== 'default') params.tier = tier;
    client.call('chat.send', params, { timeoutMs: TURN_TIMEOUT_MS }).then(
      (payload) => dispatch({ type: 'sent', localId, payload }),
      (e: unknown) => dispatch({ type: 'failed', localId, error: toErrorShape(e) }),
    );
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  };

  const pickSession = (key: string) => {
    if (key === '__new__') {
      setNewSession('');
      return;
    }
    dispatch({ type: 'session', sessionKey: key });
    const url = new URL(window.location.href);
    if (key === 'main') url.searchParams.delete('session');
    else url.searchParams.set('session', key);
    window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
  };

  const chooseTier = (t: string) => {
    setTier(t);
    try {
      window.localStorage.setItem('perch.tier', t);
    } catch {
      // not remembered, that is all
    }
  };

  if (pageError && isUnknownMethod(pageError)) {
    return (
      <section>
        <h1>Chat</h1>
        <NotAvailable what="The assistant" />
      </section>
    );
  }

  const sessionKeys = Array.from(new Set(['main', state.sessionKey, ...sessions.map((s) => s.sessionKey)]));
  const newSessionProblem = newSession !== null && newSession !== '' && !validSessionKey(newSession);
  const busy = state.own !== null;

  return (
    <section class="chat" aria-labelledby="chat-title">
      <div class="chat-head">
        <h1 id="chat-title">Chat</h1>
        <div class="chat-controls">
          <label>
            Session{' '}
            <select
              value={state.sessionKey}
              disabled={busy}
              onChange={(e) => pickSession((e.currentTarget as HTMLSelectElement).value)}
              data-testid="session-picker"
            >
              {sessionKeys.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
              <option value="__new__">New session…</option>
            </select>
          </label>
          <label>
            Model{' '}
            <select value={tier} onChange={(e) => chooseTier((e.currentTarget as HTMLSelectElement).value)} data-testid="tier-picker">
              {TIERS.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>

      {newSession !== null && (
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (!validSessionKey(newSession)) return;
            pickSession(newSession);
            setNewSession(null);
          }}
        >
          <label for="new-session">New session name</label>
          <input
            id="new-session"
            value={newSession}
            maxLength={64}
            onInput={(e) => setNewSession((e.currentTarget as HTMLInputElement).value)}
            aria-invalid={newSessionProblem ? 'true' : undefined}
            aria-describedby="new-session-help"
          />
          <span id="new-session-help" class={newSessionProblem ? 'field-error' : 'hint'}>
            Letters, digits and <code>. _ : -</code>, starting with a letter or digit.
          </span>
          <button type="submit" disabled={!newSession || newSessionProblem}>
            Open
          </button>
          <button type="button" onClick={() => setNewSession(null)}>
            Cancel
          </button>
        </form>
      )}

      {!hello && <Waiting state={conn} />}
      {pageError && <ErrorBox error={pageError} />}

      <ol class="transcript" ref={logRef} aria-label={`Conversation ${state.sessionKey}`} data-testid="transcript">
        {state.historyLoaded && state.rows.length === 0 && (
          <li class="muted empty">No messages in this session yet. Ask something below.</li>
        )}
        {state.rows.map((r) => (
          <Row key={r.id} row={r} />
        ))}
      </ol>
      {othersBusy(state) && (
        <p class="muted" role="status">
          Another window or device is talking to the assistant in this session…
        </p>
      )}

      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <label for="message" class="sr-only">
          Message
        </label>
        <textarea
          id="message"
          ref={inputRef}
          rows={3}
          placeholder={hello ? 'Ask the assistant…' : 'Waiting for the host…'}
          value={draft}
          onInput={(e) => setDraft((e.currentTarget as HTMLTextAreaElement).value)}
          onKeyDown={onKeyDown}
          aria-describedby="composer-help"
        />
        <div class="composer-bar">
          <span id="composer-help" class="hint">
            Enter sends · Shift+Enter adds a line
          </span>
          <button type="submit" class="primary" disabled={!hello || busy || !draft.trim()}>
            {busy ? 'Answering…' : 'Send'}
          </button>
        </div>
      </form>
    </section>
  );
}

function Row({ row }: { row: ChatRow }) {
  switch (row.kind) {
    case 'user':
      return (
        <li class="msg user">
          <span class="sr-only">You: </span>
          <div class="bubble">{row.text}</div>
        </li>
      );
    case 'assistant':
      return (
        <li class="msg assistant" aria-busy={row.streaming ? 'true' : undefined} data-testid="assistant-message">
          <span class="sr-only">Assistant: </span>
          {row.tools.length > 0 && (
            <ul class="chips" aria-label="Tools used">
              {row.tools.map((t, i) => (
                <li key={i} class={`chip tool tool-${t.state}`}>
                  {t.name}{' '}
                  <span aria-label={t.state}>{t.state === 'ok' ? '✓' : t.state === 'failed' ? '✗' : '…'}</span>
                </li>
              ))}
            </ul>
          )}
          <div class="bubble" aria-live={row.streaming ? 'polite' : undefined}>
            {row.text || (row.streaming ? <span class="muted">Thinking…</span> : <span class="muted">(no text)</span>)}
          </div>
        </li>
      );
    case 'error':
      return (
        <li class="msg error" data-testid="chat-error">
          <ErrorBox error={{ code: row.code ?? 'ERROR', message: row.message }} />
        </li>
      );
  }
}
