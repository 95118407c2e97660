// The devices page's state: `node.list`, `device.pair.list` and presence merged, then kept
// current by `node.status`, `presence` and `device.pair.requested/resolved` events. Pure: the
// page feeds it what the host said (parsed leniently here) and renders the selectors.

import { type PresenceEntry, isObject, num, parsePresenceEntry, str, strArray } from '../protocol/frames';

export interface NodeInfo {
  nodeId: string;
  displayName: string;
  platform: string;
  online: boolean;
  lastSeenMs?: number;
  commands: string[];
}

export interface PairedInfo {
  deviceId: string;
  displayName: string;
  platform: string;
  role: string;
  pairedAtMs?: number;
  lastSeenMs?: number;
  revoked: boolean;
  online: boolean;
}

export interface PendingInfo {
  requestId: string;
  deviceId: string;
  displayName: string;
  platform: string;
  verificationCode?: string;
  requestedAtMs?: number;
  remoteAddr?: string;
}

export interface DevicesState {
  /** From node.list, updated by node.status. */
  nodes: Record<string, NodeInfo>;
  /** From device.pair.list `paired` (revoked included), updated by events. */
  paired: Record<string, PairedInfo>;
  /** From device.pair.list `pending`, updated by device.pair.requested/resolved. */
  pending: Record<string, PendingInfo>;
  presence: Record<string, PresenceEntry>;
  presenceVersion: number;
  /** A presence event skipped a version: fetch `system-presence` again. */
  presenceGap: boolean;
  /** A node appeared that node.list has not described yet (commands unknown): fetch it again. */
  nodesStale: boolean;
  loaded: { nodes: boolean; pairs: boolean };
  /** This window's own presence key (`conn:<connId>`), to label it. */
  selfKey?: string;
}

export const initialDevices: DevicesState = {
  nodes: {},
  paired: {},
  pending: {},
  presence: {},
  presenceVersion: 0,
  presenceGap: false,
  nodesStale: false,
  loaded: { nodes: false, pairs: false },
};

export type DevicesAction =
  | { type: 'nodes'; payload: unknown }
  | { type: 'pairs'; payload: unknown }
  | { type: 'presence-snapshot'; entries: unknown; version: number; selfKey?: string }
  | { type: 'event'; event: string; payload: unknown; presenceVersion?: number }
  | { type: 'revoked'; deviceId: string }
  | { type: 'removed'; deviceId: string };

function parseNode(v: unknown): NodeInfo | undefined {
  if (!isObject(v)) return undefined;
  const nodeId = str(v.nodeId);
  if (!nodeId) return undefined;
  const n: NodeInfo = {
    nodeId,
    displayName: str(v.displayName) || nodeId.slice(0, 10),
    platform: str(v.platform) ?? 'unknown',
    online: v.online === true,
    commands: strArray(v.commands),
  };
  const seen = num(v.lastSeenMs);
  if (seen !== undefined) n.lastSeenMs = seen;
  return n;
}

function parsePaired(v: unknown): PairedInfo | undefined {
  if (!isObject(v)) return undefined;
  const deviceId = str(v.deviceId);
  if (!deviceId) return undefined;
  const p: PairedInfo = {
    deviceId,
    displayName: str(v.displayName) || deviceId.slice(0, 10),
    platform: str(v.platform) ?? 'unknown',
    role: str(v.role) ?? 'node',
    revoked: v.revoked === true,
    online: v.online === true,
  };
  const at = num(v.pairedAtMs);
  if (at !== undefined) p.pairedAtMs = at;
  const seen = num(v.lastSeenMs);
  if (seen !== undefined) p.lastSeenMs = seen;
  return p;
}

function parsePending(v: unknown, tsField: 'requestedAtMs' | 'ts'): PendingInfo | undefined {
  if (!isObject(v)) return undefined;
  const requestId = str(v.requestId);
  const deviceId = str(v.deviceId);
  if (!requestId || !deviceId) return undefined;
  const p: PendingInfo = {
    requestId,
    deviceId,
    displayName: str(v.displayName) || deviceId.slice(0, 10),
    platform: str(v.platform) ?? 'unknown',
  };
  const code = str(v.verificationCode);
  if (code) p.verificationCode = code;
  const at = num(v[tsField]);
  if (at !== undefined) p.requestedAtMs = at;
  // device.pair.list says remoteAddr; the device.pair.requested event says remoteIp (OpenClaw's name).
  const addr = str(v.remoteAddr) ?? str(v.remoteIp);
  if (addr) p.remoteAddr = addr;
  return p;
}

function byKey<T>(items: (T | undefined)[], key: (t: T) => string): Record<string, T> {
  const out: Record<string, T> = {};
  for (const it of items) if (it) out[key(it)] = it;
  return out;
}

function without<T>(rec: Record<string, T>, key: string): Record<string, T> {
  if (!(key in rec)) return rec;
  const out = { ...rec };
  delete out[key];
  return out;
}

function applyPresence(state: DevicesState, payload: unknown, version: number | undefined): DevicesState {
  if (!isObject(payload)) return state;
  if (version !== undefined && version <= state.presenceVersion) return state; // already applied
  const gap = version !== undefined && version > state.presenceVersion + 1;
  let presence = state.presence;
  if (payload.change === 'upsert') {
    const entry = parsePresenceEntry(payload.entry);
    if (!entry) return state;
    presence = { ...presence, [entry.key]: entry };
  } else if (payload.change === 'remove') {
    const key = str(payload.key);
    if (!key) return state;
    presence = without(presence, key);
  } else {
    return state;
  }
  return {
    ...state,
    presence,
    presenceVersion: version ?? state.presenceVersion,
    presenceGap: state.presenceGap || gap,
  };
}

function applyEvent(state: DevicesState, event: string, payload: unknown, presenceVersion?: number): DevicesState {
  switch (event) {
    case 'presence':
      return applyPresence(state, payload, presenceVersion);
    case 'node.status': {
      if (!isObject(payload)) return state;
      const nodeId = str(payload.nodeId);
      if (!nodeId || typeof payload.online !== 'boolean') return state;
      const online = payload.online;
      const ts = num(payload.ts);
      const name = str(payload.displayName);
      const known = state.nodes[nodeId];
      const node: NodeInfo = {
        nodeId,
        displayName: name || known?.displayName || nodeId.slice(0, 10),
        platform: known?.platform ?? state.paired[nodeId]?.platform ?? 'unknown',
        online,
        commands: known?.commands ?? [],
      };
      const seen = ts ?? known?.lastSeenMs;
      if (seen !== undefined) node.lastSeenMs = seen;
      let paired = state.paired;
      const p = paired[nodeId];
      if (p) {
        const up: PairedInfo = { ...p, online };
        if (ts !== undefined) up.lastSeenMs = ts;
        paired = { ...paired, [nodeId]: up };
      }
      return {
        ...state,
        nodes: { ...state.nodes, [nodeId]: node },
        paired,
        // A node coming online may advertise new commands; only node.list says which.
        nodesStale: state.nodesStale || (online && (!known || !known.online)),
      };
    }
    case 'device.pair.requested': {
      const p = parsePending(payload, 'ts');
      if (!p) return state;
      return { ...state, pending: { ...state.pending, [p.requestId]: p } };
    }
    case 'device.pair.resolved': {
      if (!isObject(payload)) return state;
      const requestId = str(payload.requestId);
      if (!requestId) return state;
      const req = state.pending[requestId];
      const next = { ...state, pending: without(state.pending, requestId) };
      const deviceId = str(payload.deviceId) ?? req?.deviceId;
      if (payload.decision === 'approved' && deviceId) {
        const prior = state.paired[deviceId];
        const rec: PairedInfo = {
          deviceId,
          displayName: req?.displayName ?? prior?.displayName ?? deviceId.slice(0, 10),
          platform: req?.platform ?? prior?.platform ?? 'unknown',
          role: 'node',
          revoked: false,
          online: prior?.online ?? false,
        };
        const ts = num(payload.ts);
        if (ts !== undefined) rec.pairedAtMs = ts;
        next.paired = { ...state.paired, [deviceId]: rec };
        next.nodesStale = true;
      }
      return next;
    }
    default:
      // Events this page does not show (tick, chat, agent.turn, ones a newer host adds).
      return state;
  }
}

export function devicesReducer(state: DevicesState, action: DevicesAction): DevicesState {
  switch (action.type) {
    case 'nodes': {
      if (!Array.isArray(action.payload)) return state;
      return {
        ...state,
        nodes: byKey(action.payload.map(parseNode), (n) => n.nodeId),
        nodesStale: false,
        loaded: { ...state.loaded, nodes: true },
      };
    }
    case 'pairs': {
      if (!isObject(action.payload)) return state;
      const paired = Array.isArray(action.payload.paired) ? action.payload.paired.map(parsePaired) : [];
      const pending = Array.isArray(action.payload.pending)
        ? action.payload.pending.map((p) => parsePending(p, 'requestedAtMs'))
        : [];
      return {
        ...state,
        paired: byKey(paired, (p) => p.deviceId),
        pending: byKey(pending, (p) => p.requestId),
        loaded: { ...state.loaded, pairs: true },
      };
    }
    case 'presence-snapshot': {
      const entries = Array.isArray(action.entries) ? action.entries.map(parsePresenceEntry) : [];
      const next: DevicesState = {
        ...state,
        presence: byKey(entries, (e) => e.key),
        presenceVersion: action.version,
        presenceGap: false,
      };
      if (action.selfKey !== undefined) next.selfKey = action.selfKey;
      return next;
    }
    case 'event':
      return applyEvent(state, action.event, action.payload, action.presenceVersion);
    case 'revoked': {
      const p = state.paired[action.deviceId];
      return {
        ...state,
        nodes: without(state.nodes, action.deviceId),
        paired: p ? { ...state.paired, [action.deviceId]: { ...p, revoked: true, online: false } } : state.paired,
      };
    }
    case 'removed':
      return {
        ...state,
        nodes: without(state.nodes, action.deviceId),
        paired: without(state.paired, action.deviceId),
      };
  }
}

// ---- selectors ----

export interface DeviceRow {
  deviceId: string;
  displayName: string;
  platform: string;
  online: boolean;
  lastSeenMs?: number;
  lastActivityMs?: number;
  commands: string[];
  pairedAtMs?: number;
}

function maxDefined(...xs: (number | undefined)[]): number | undefined {
  const ys = xs.filter((x): x is number => x !== undefined);
  return ys.length ? Math.max(...ys) : undefined;
}

/** Paired, non-revoked nodes: online first, then by name. */
export function deviceRows(state: DevicesState): DeviceRow[] {
  const ids = new Set<string>(Object.keys(state.nodes));
  for (const p of Object.values(state.paired)) if (!p.revoked && p.role === 'node') ids.add(p.deviceId);
  const presenceByDevice = new Map<string, PresenceEntry>();
  for (const e of Object.values(state.presence)) if (e.deviceId && e.role === 'node') presenceByDevice.set(e.deviceId, e);
  const rows: DeviceRow[] = [];
  for (const id of ids) {
    const n = state.nodes[id];
    const p = state.paired[id];
    if (p?.revoked) continue;
    const pres = presenceByDevice.get(id);
    const row: DeviceRow = {
      deviceId: id,
      displayName: n?.displayName ?? p?.displayName ?? id.slice(0, 10),
      platform: n?.platform ?? p?.platform ?? 'unknown',
      online: n ? n.online : (p?.online ?? false),
      commands: n?.commands ?? [],
    };
    const seen = maxDefined(n?.lastSeenMs, p?.lastSeenMs, pres?.lastSeenMs);
    if (seen !== undefined) row.lastSeenMs = seen;
    if (pres?.lastActivityMs !== undefined) row.lastActivityMs = pres.lastActivityMs;
    if (p?.pairedAtMs !== undefined) row.pairedAtMs = p.pairedAtMs;
    rows.push(row);
  }
  return rows.sort(
    (a, b) => Number(b.online) - Number(a.online) || a.displayName.localeCompare(b.displayName) || a.deviceId.localeCompare(b.deviceId),
  );
}

export function pendingRows(state: DevicesState): PendingInfo[] {
  return Object.values(state.pending).sort(
    (a, b) => (a.requestedAtMs ?? 0) - (b.requestedAtMs ?? 0) || a.requestId.localeCompare(b.requestId),
  );
}

/** Requests listed one by one before the rest are counted (as in the tray menu). */
export const PENDING_SHOWN = 5;

/**
 * What the pairing list shows: every request when asked to, else the newest handful, so a flood
 * of requests can't push the devices off the page; `hidden` counts the rest.
 */
export function pendingView(state: DevicesState, showAll: boolean): { shown: PendingInfo[]; hidden: number } {
  const newest = pendingRows(state).reverse();
  if (showAll || newest.length <= PENDING_SHOWN) return { shown: newest, hidden: 0 };
  return { shown: newest.slice(0, PENDING_SHOWN), hidden: newest.length - PENDING_SHOWN };
}

export function revokedRows(state: DevicesState): PairedInfo[] {
  return Object.values(state.paired)
    .filter((p) => p.revoked)
    .sort((a, b) => a.displayName.localeCompare(b.displayName));
}

/** Connections that are not nodes (this window, other UIs, the desktop app), newest first. */
export function clientRows(state: DevicesState): (PresenceEntry & { self: boolean })[] {
  return Object.values(state.presence)
    .filter((e) => e.role !== 'node')
    .map((e) => ({ ...e, self: e.key === state.selfKey }))
    .sort((a, b) => (b.lastSeenMs ?? 0) - (a.lastSeenMs ?? 0) || a.key.localeCompare(b.key));
}

// ---- formatting ----

/** "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago", or the date; "never" without a time. */
export function formatAgo(ms: number | undefined, now: number): string {
  if (ms === undefined || !Number.isFinite(ms)) return 'never';
  const s = Math.floor((now - ms) / 1000);
  if (s < 45) return 'just now';
  const min = Math.round(s / 60);
  if (min < 60) return `${Math.max(1, min)} min ago`;
  const h = Math.floor(s / 3600);
  if (h < 24) return `${h} h ago`;
  const d = Math.floor(s / 86400);
  if (d === 1) return 'yesterday';
  if (d < 7) return `${d} days ago`;
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The status line of one device. */
export function describePresence(row: Pick<DeviceRow, 'online' | 'lastSeenMs' | 'lastActivityMs'>, now: number): string {
  if (row.online) {
    if (row.lastActivityMs !== undefined) {
      const idleS = (now - row.lastActivityMs) / 1000;
      return idleS < 120 ? 'Online, in use' : `Online, last used ${formatAgo(row.lastActivityMs, now)}`;
    }
    return 'Online';
  }
  return row.lastSeenMs === undefined ? 'Offline, never connected' : `Offline, last seen ${formatAgo(row.lastSeenMs, now)}`;
}
