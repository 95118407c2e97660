// A device's access record (`device.access.list`): who ran which command on it, when, and what
// came of it. Pure: the page feeds it what the host said (parsed leniently here), pages are
// appended in order, and the selectors say each row in words.

import { isObject, num, str } from '../protocol/frames';

export type Requester =
  | { kind: 'turn'; sessionKey: string; turnId: string }
  | { kind: 'operator'; deviceId?: string; label: string };

export type Outcome = 'ok' | 'failed' | 'refused';

export interface AccessEntry {
  atMs: number;
  durationMs: number;
  command: string;
  requester: Requester;
  outcome: Outcome;
  errorCode?: string;
}

export interface AccessPage {
  nodeId: string;
  entries: AccessEntry[];
  nextBefore?: string;
}

export interface AccessState {
  entries: AccessEntry[];
  /** Where the next (older) page starts; undefined once the end was reached. */
  nextBefore?: string;
  loaded: boolean;
}

export const initialAccess: AccessState = { entries: [], loaded: false };

export type AccessAction = { type: 'first'; payload: unknown } | { type: 'older'; payload: unknown };

function parseRequester(v: unknown): Requester | undefined {
  if (!isObject(v)) return undefined;
  if (v.kind === 'turn') {
    return { kind: 'turn', sessionKey: str(v.sessionKey) ?? '', turnId: str(v.turnId) ?? '' };
  }
  if (v.kind === 'operator') {
    const deviceId = str(v.deviceId);
    return { kind: 'operator', label: str(v.label) ?? '', ...(deviceId ? { deviceId } : {}) };
  }
  return undefined;
}

function parseEntry(v: unknown): AccessEntry | undefined {
  if (!isObject(v)) return undefined;
  const command = str(v.command);
  const atMs = num(v.atMs);
  const requester = parseRequester(v.requester);
  const outcome = v.outcome;
  if (!command || atMs === undefined || !requester) return undefined;
  if (outcome !== 'ok' && outcome !== 'failed' && outcome !== 'refused') return undefined;
  const errorCode = str(v.errorCode);
  return { atMs, durationMs: num(v.durationMs) ?? 0, command, requester, outcome, ...(errorCode ? { errorCode } : {}) };
}

/** One page from the host; rows it cannot read are skipped, never fatal. */
export function parseAccessPage(v: unknown): AccessPage {
  if (!isObject(v)) return { nodeId: '', entries: [] };
  const entries = Array.isArray(v.entries) ? v.entries.map(parseEntry).filter((e): e is AccessEntry => !!e) : [];
  const nextBefore = str(v.nextBefore);
  return { nodeId: str(v.nodeId) ?? '', entries, ...(nextBefore ? { nextBefore } : {}) };
}

export function accessReducer(state: AccessState, action: AccessAction): AccessState {
  const page = parseAccessPage(action.payload);
  const entries = action.type === 'first' ? page.entries : [...state.entries, ...page.entries];
  return { entries, nextBefore: page.nextBefore, loaded: true };
}

/** Who asked, in words: the assistant (with its session) or the operator app by name. */
export function describeRequester(r: Requester): string {
  if (r.kind === 'turn') return `Assistant · session ${r.sessionKey || '?'}`;
  const who = r.label || 'operator';
  return r.deviceId ? `${who} (${r.deviceId.slice(0, 10)})` : who;
}

/** What came of it, in words, with the error code for failures and refusals. */
export function describeOutcome(e: Pick<AccessEntry, 'outcome' | 'errorCode'>): string {
  if (e.outcome === 'ok') return 'ok';
  const verb = e.outcome === 'refused' ? 'refused by the host' : 'failed';
  return e.errorCode ? `${verb}: ${e.errorCode}` : verb;
}
