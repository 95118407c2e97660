// The chat page's state: the transcript of one session, the turn this window is running
// (streamed by `chat` events of kind delta/tool, settled by the `chat.send` result or error), and
// turns that other clients run (`agent.turn` events). Pure; the page wires it to the client.

import { type ErrorShape, isObject, num, str } from '../protocol/frames';

export interface ToolChip {
  name: string;
  /** `started`, `ok` or `failed` (anything else the host sends is shown as is). */
  state: string;
}

/** `atMs`: when it was written (history) or sent (this window), to keep local rows in order. */
export type ChatRow =
  | { kind: 'user'; id: string; text: string; turnId?: string; atMs?: number }
  | { kind: 'assistant'; id: string; text: string; tools: ToolChip[]; streaming: boolean; turnId?: string; atMs?: number }
  | { kind: 'error'; id: string; code?: string; message: string; details?: unknown; turnId?: string; atMs?: number };

export interface OwnTurn {
  localId: string;
  /** Learned from the first `chat` event, the result, or the error's details. */
  turnId?: string;
  rowId: string;
  atMs: number;
  /**
   * Turns that started in this session while ours had no id yet: one of them may be ours
   * (`agent.turn` reaches every operator, the caller included, before any `chat` event).
   */
  candidates: string[];
  /** Candidates that ended before we knew which one is ours; judged when ours ends. */
  ended: string[];
}

export interface ChatState {
  sessionKey: string;
  rows: ChatRow[];
  own: OwnTurn | null;
  /** Recent turn ids of this window (known or inferred), so their `agent.turn` events are not taken for others'. */
  mine: string[];
  /** Turns that other clients run right now, by turn id. */
  others: Record<string, { sessionKey: string }>;
  /**
   * This window's failed turns as rows (question and error), kept across transcript reloads:
   * a turn the host refused before it began (no credential, say) is in no transcript.
   */
  localRows: ChatRow[];
  /** The transcript changed elsewhere (or a turn's fate is unknown): fetch sessions.history. */
  historyStale: boolean;
  /** The session list changed: fetch sessions.list. */
  sessionsStale: boolean;
  historyLoaded: boolean;
}

export function initialChat(sessionKey = 'main'): ChatState {
  return {
    sessionKey,
    rows: [],
    own: null,
    mine: [],
    others: {},
    localRows: [],
    historyStale: true,
    sessionsStale: true,
    historyLoaded: false,
  };
}

export type ChatAction =
  | { type: 'session'; sessionKey: string }
  | { type: 'history'; sessionKey: string; payload: unknown }
  | { type: 'history-missing'; sessionKey: string }
  | { type: 'sessions-loaded' }
  /** A new hello-ok: whatever happened while disconnected, re-read both lists. */
  | { type: 'reconnected' }
  | { type: 'send'; localId: string; message: string; atMs: number }
  | { type: 'event'; event: string; payload: unknown }
  | { type: 'sent'; localId: string; payload: unknown }
  | { type: 'failed'; localId: string; error: ErrorShape };

const SESSION_KEY = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** The host's rule (core/protocol/src/sessions.rs): 1–64 of letters, digits and `._:-`, starting with a letter or digit. */
export function validSessionKey(key: string): boolean {
  return SESSION_KEY.test(key);
}

function toolNames(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  const out: string[] = [];
  for (const c of v) {
    if (!isObject(c)) continue;
    const name = str(c.name) ?? (isObject(c.function) ? str(c.function.name) : undefined);
    if (name) out.push(name);
  }
  return out;
}

/** One transcript (oldest first) as rows: a turn's assistant and tool messages become one answer with tool chips. */
export function rowsFromHistory(messages: unknown): ChatRow[] {
  if (!Array.isArray(messages)) return [];
  const rows: ChatRow[] = [];
  let answer: Extract<ChatRow, { kind: 'assistant' }> | null = null;
  messages.forEach((m, i) => {
    if (!isObject(m)) return;
    const role = str(m.role);
    const content = str(m.content) ?? '';
    const turnId = str(m.turnId);
    const id = `h${num(m.seq) ?? i}`;
    const at = num(m.createdAtMs);
    if (role === 'user') {
      answer = null;
      const row: ChatRow = { kind: 'user', id, text: content };
      if (turnId) row.turnId = turnId;
      if (at !== undefined) row.atMs = at;
      rows.push(row);
    } else if (role === 'assistant' || role === 'tool') {
      if (!answer || answer.turnId !== turnId) {
        answer = { kind: 'assistant', id, text: '', tools: [], streaming: false };
        if (turnId) answer.turnId = turnId;
        if (at !== undefined) answer.atMs = at;
        rows.push(answer);
      }
      if (role === 'assistant') {
        if (content.trim()) answer.text = answer.text ? `${answer.text}\n\n${content}` : content;
        for (const name of toolNames(m.toolCalls)) answer.tools.push({ name, state: 'started' });
      } else {
        const name = str(m.toolName) ?? 'tool';
        const state = m.isError === true ? 'failed' : 'ok';
        const open = answer.tools.find((t) => t.name === name && t.state === 'started');
        if (open) open.state = state;
        else answer.tools.push({ name, state });
      }
    } else if (role === 'error') {
      answer = null;
      const row: ChatRow = { kind: 'error', id, message: content || 'the turn failed' };
      if (turnId) row.turnId = turnId;
      if (at !== undefined) row.atMs = at;
      rows.push(row);
    }
  });
  return rows;
}

function updateRow(rows: ChatRow[], id: string, f: (r: ChatRow) => ChatRow | ChatRow[]): ChatRow[] {
  const out: ChatRow[] = [];
  for (const r of rows) {
    if (r.id === id) {
      const n = f(r);
      if (Array.isArray(n)) out.push(...n);
      else out.push(n);
    } else out.push(r);
  }
  return out;
}

function withoutKey<T>(rec: Record<string, T>, key: string | undefined): Record<string, T> {
  if (key === undefined || !(key in rec)) return rec;
  const out = { ...rec };
  delete out[key];
  return out;
}

/** History rows plus this window's failed turns that the transcript does not have, in time order. */
export function mergeLocalRows(history: ChatRow[], local: ChatRow[]): ChatRow[] {
  const known = new Set(history.map((r) => r.turnId).filter((t): t is string => !!t));
  const extra = local.filter((r) => !r.turnId || !known.has(r.turnId));
  if (!extra.length) return history;
  const out: ChatRow[] = [];
  let i = 0;
  for (const h of history) {
    while (i < extra.length && (extra[i]?.atMs ?? Infinity) < (h.atMs ?? -Infinity)) out.push(extra[i++] as ChatRow);
    out.push(h);
  }
  while (i < extra.length) out.push(extra[i++] as ChatRow);
  return out;
}

const MINE_KEPT = 20;

/** Our turn's id: what the host said, else the only turn that started here while ours ran. */
function resolveOurs(own: OwnTurn, said: string | undefined): string | undefined {
  return said ?? own.turnId ?? (own.candidates.length === 1 ? own.candidates[0] : undefined);
}

/** Our turn's id is known (or as known as it gets): the other candidates are other clients' turns. */
function settleCandidates(state: ChatState, own: OwnTurn, ours: string | undefined): Pick<ChatState, 'mine' | 'others' | 'historyStale'> {
  const othersEnded = own.ended.filter((t) => t !== ours);
  return {
    mine: ours ? [...state.mine.filter((t) => t !== ours), ours].slice(-MINE_KEPT) : state.mine,
    others: withoutKey(state.others, ours),
    // Another client's turn ended here while ours ran: the transcript has it.
    historyStale: state.historyStale || othersEnded.length > 0,
  };
}

function applyChatEvent(state: ChatState, payload: unknown): ChatState {
  const own = state.own;
  if (!own || !isObject(payload)) return state; // `chat` events go only to the caller
  const turnId = str(payload.turnId);
  if (!turnId) return state;
  if (own.turnId && own.turnId !== turnId) return state; // a late event of an earlier turn
  let rows = state.rows;
  if (payload.kind === 'delta') {
    const text = str(payload.text);
    if (text === undefined) return state;
    rows = updateRow(rows, own.rowId, (r) => (r.kind === 'assistant' ? { ...r, turnId, text: r.text + text } : r));
  } else if (payload.kind === 'tool') {
    const name = str(payload.name);
    const toolState = str(payload.state);
    if (!name || !toolState) return state;
    rows = updateRow(rows, own.rowId, (r) => {
      if (r.kind !== 'assistant') return r;
      const tools = [...r.tools];
      const open = tools.findIndex((t) => t.name === name && t.state === 'started');
      if (toolState !== 'started' && open >= 0) tools[open] = { name, state: toolState };
      else tools.push({ name, state: toolState });
      return { ...r, turnId, tools };
    });
  } else {
    return state; // a kind this UI does not know
  }
  if (own.turnId) return { ...state, rows };
  return { ...state, rows, ...settleCandidates(state, own, turnId), own: { ...own, turnId, candidates: [], ended: [] } };
}

function applyAgentTurn(state: ChatState, payload: unknown): ChatState {
  if (!isObject(payload)) return state;
  const turnId = str(payload.turnId);
  const sessionKey = str(payload.sessionKey);
  const phase = str(payload.state);
  if (!turnId || !sessionKey || !phase) return state;
  const own = state.own;
  if (own?.turnId === turnId || state.mine.includes(turnId)) return state; // ours, shown already
  const ownUnknown = own && !own.turnId && sessionKey === state.sessionKey ? own : null;
  if (phase === 'started') {
    const next: ChatState = { ...state, others: { ...state.others, [turnId]: { sessionKey } } };
    if (ownUnknown) next.own = { ...ownUnknown, candidates: [...ownUnknown.candidates, turnId] };
    return next;
  }
  if (phase === 'finished' || phase === 'failed') {
    const next: ChatState = { ...state, others: withoutKey(state.others, turnId), sessionsStale: true };
    if (ownUnknown && ownUnknown.candidates.includes(turnId)) {
      // Ours or not? Decided when ours ends.
      next.own = { ...ownUnknown, ended: [...ownUnknown.ended, turnId] };
    } else if (sessionKey === state.sessionKey) {
      // Another client's turn changed this transcript; reload it (after our own turn, if any).
      next.historyStale = true;
    }
    return next;
  }
  return state;
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case 'session':
      if (action.sessionKey === state.sessionKey || state.own) return state;
      return { ...state, sessionKey: action.sessionKey, rows: [], localRows: [], historyStale: true, historyLoaded: false };
    case 'history':
      // Our own turn's rows are newer than any transcript fetched meanwhile: wait for it to end.
      if (action.sessionKey !== state.sessionKey || state.own) return state;
      return {
        ...state,
        rows: mergeLocalRows(isObject(action.payload) ? rowsFromHistory(action.payload.messages) : [], state.localRows),
        historyStale: false,
        historyLoaded: true,
      };
    case 'history-missing':
      // NOT_FOUND: a session that has no turns yet.
      if (action.sessionKey !== state.sessionKey || state.own) return state;
      return { ...state, rows: [...state.localRows], historyStale: false, historyLoaded: true };
    case 'sessions-loaded':
      return state.sessionsStale ? { ...state, sessionsStale: false } : state;
    case 'reconnected':
      // Turns of others that were running are unknown now; their events may never come.
      return { ...state, historyStale: true, sessionsStale: true, others: {} };
    case 'send': {
      if (state.own) return state; // one turn at a time from this window
      const rowId = `a-${action.localId}`;
      return {
        ...state,
        rows: [
          ...state.rows,
          { kind: 'user', id: `u-${action.localId}`, text: action.message, atMs: action.atMs },
          { kind: 'assistant', id: rowId, text: '', tools: [], streaming: true, atMs: action.atMs },
        ],
        own: { localId: action.localId, rowId, atMs: action.atMs, candidates: [], ended: [] },
      };
    }
    case 'event':
      if (action.event === 'chat') return applyChatEvent(state, action.payload);
      if (action.event === 'agent.turn') return applyAgentTurn(state, action.payload);
      return state;
    case 'sent': {
      const own = state.own;
      if (!own || own.localId !== action.localId) return state;
      const p = isObject(action.payload) ? action.payload : {};
      const turnId = resolveOurs(own, str(p.turnId));
      const finalText = str(p.text);
      const rows = updateRow(state.rows, own.rowId, (r) => {
        if (r.kind !== 'assistant') return r;
        // The result's text is the whole answer; it wins over what the deltas assembled.
        const done: ChatRow = { ...r, text: finalText ?? r.text, streaming: false };
        if (turnId) done.turnId = turnId;
        return done;
      });
      return { ...state, rows, ...settleCandidates(state, own, turnId), own: null, sessionsStale: true };
    }
    case 'failed': {
      const own = state.own;
      if (!own || own.localId !== action.localId) return state;
      const details = action.error.details;
      const turnId = resolveOurs(own, isObject(details) ? str(details.turnId) : undefined);
      const settled = settleCandidates(state, own, turnId);
      const errorRow: ChatRow = { kind: 'error', id: `e-${action.localId}`, code: action.error.code, message: action.error.message, atMs: own.atMs };
      if (details !== undefined) errorRow.details = details;
      if (turnId) errorRow.turnId = turnId;
      let question: ChatRow | undefined;
      const rows = updateRow(state.rows, own.rowId, (r) => {
        if (r.kind !== 'assistant') return r;
        // Keep what was streamed before the failure; an empty answer bubble is just noise.
        if (!r.text && r.tools.length === 0) return errorRow;
        return [{ ...r, streaming: false }, errorRow];
      }).map((r) => {
        if (r.id !== `u-${own.localId}`) return r;
        question = turnId ? { ...r, turnId } : r;
        return question;
      });
      // If the connection dropped, the turn may have finished on the host: re-read the transcript.
      const unknownFate = ['CONNECTION_LOST', 'NOT_CONNECTED', 'TIMEOUT'].includes(action.error.code);
      // The host's answer is final: keep the question and the error through transcript reloads
      // (dropped again if the transcript has this turn).
      const localRows = unknownFate || !question ? state.localRows : [...state.localRows, question, errorRow];
      return {
        ...state,
        ...settled,
        rows,
        localRows,
        own: null,
        historyStale: settled.historyStale || unknownFate,
        sessionsStale: true,
      };
    }
  }
}

/** Whether another client is running a turn in the session shown (and this window is not). */
export function othersBusy(state: ChatState): boolean {
  if (state.own) return false;
  return Object.values(state.others).some((t) => t.sessionKey === state.sessionKey);
}

/** What a person can do about an error code, where the code alone does not say. */
export function explainError(code: string | undefined): string | undefined {
  switch (code) {
    case 'CREDENTIAL_MISSING':
      return 'No model is set up for this tier, or it has no credential. On the host, run `perch auth set` to store the provider key (or set it in the environment), and choose the provider and model for the tier under Settings.';
    case 'MODEL_ERROR':
      return 'The model provider failed this turn (an HTTP error, a rate limit or a broken stream). Try again, or pick another tier.';
    case 'CONNECTION_LOST':
    case 'NOT_CONNECTED':
      return 'The connection to the host dropped. The turn may still have finished there; the transcript reloads when the connection is back.';
    case 'TIMEOUT':
      return 'No answer in time. The turn may still be running on the host.';
    case 'UNKNOWN_METHOD':
      return 'This host does not offer the assistant yet; update Perch on the host.';
    default:
      return undefined;
  }
}
