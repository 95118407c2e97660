// Wire frames of the Perch gateway protocol (docs/protocol.md §2, core/protocol/src/frame.rs).
// Everything that arrives from the socket goes through `parseFrame`, which never throws: a
// frame the UI cannot read is reported as `null` and dropped, so a bad host cannot crash the UI.

/** The structured error every failure carries (`res.error`, `connection.closing`, ...). */
export interface ErrorShape {
  code: string;
  message: string;
  details?: unknown;
  retryable?: boolean;
  retryAfterMs?: number;
}

export interface ReqFrame {
  type: 'req';
  id: string;
  method: string;
  params?: unknown;
}

export type ResFrame =
  | { type: 'res'; id: string; ok: true; payload: unknown }
  | { type: 'res'; id: string; ok: false; error: ErrorShape };

export interface StateVersion {
  presence: number;
  health: number;
}

export interface EventFrame {
  type: 'event';
  event: string;
  payload: unknown;
  seq?: number;
  stateVersion?: StateVersion;
}

export interface CancelFrame {
  type: 'cancel';
  id: string;
}

/** Frames a client receives. */
export type InboundFrame = ResFrame | EventFrame;

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function bool(v: unknown): boolean | undefined {
  return typeof v === 'boolean' ? v : undefined;
}

export function strArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Reads an ErrorShape leniently; `undefined` if there is no code or message at all. */
export function parseErrorShape(v: unknown): ErrorShape | undefined {
  if (!isObject(v)) return undefined;
  const code = str(v.code);
  const message = str(v.message);
  if (code === undefined && message === undefined) return undefined;
  const out: ErrorShape = { code: code || 'UNKNOWN', message: message ?? '' };
  if ('details' in v && v.details !== undefined) out.details = v.details;
  const retryable = bool(v.retryable);
  if (retryable !== undefined) out.retryable = retryable;
  const after = num(v.retryAfterMs);
  if (after !== undefined) out.retryAfterMs = after;
  return out;
}

/**
 * Parses one text message from the host. Returns `null` for anything that is not a
 * well-formed `res` or `event` frame (malformed JSON, wrong types, a `res` that breaks the
 * ok/error invariant, a `req` or `cancel` from the host).
 */
export function parseFrame(text: unknown): InboundFrame | null {
  if (typeof text !== 'string') return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(v)) return null;
  if (v.type === 'res') {
    const id = str(v.id);
    if (!id) return null;
    if (v.ok === true) {
      if (v.error !== undefined) return null;
      return { type: 'res', id, ok: true, payload: v.payload ?? null };
    }
    if (v.ok === false) {
      const error = parseErrorShape(v.error);
      if (!error) return null;
      return { type: 'res', id, ok: false, error };
    }
    return null;
  }
  if (v.type === 'event') {
    const event = str(v.event);
    if (!event) return null;
    const frame: EventFrame = { type: 'event', event, payload: v.payload ?? null };
    const seq = num(v.seq);
    if (seq !== undefined) frame.seq = seq;
    if (isObject(v.stateVersion)) {
      const presence = num(v.stateVersion.presence);
      if (presence !== undefined) {
        frame.stateVersion = { presence, health: num(v.stateVersion.health) ?? 0 };
      }
    }
    return frame;
  }
  return null;
}

// ---- the handshake (core/protocol/src/handshake.rs) ----

export const PROTOCOL_VERSION = 4;

export interface ClientInfo {
  id: string;
  displayName?: string;
  version: string;
  platform: string;
  mode: string;
}

export interface ConnectParams {
  minProtocol: number;
  maxProtocol: number;
  client: ClientInfo;
  role: 'operator';
  scopes: string[];
  auth: { token: string };
  locale?: string;
  userAgent?: string;
}

export interface PresenceEntry {
  key: string;
  deviceId?: string;
  displayName: string;
  platform: string;
  role: string;
  mode: string;
  connectedSinceMs?: number;
  lastSeenMs?: number;
  lastActivityMs?: number;
  remoteAddr?: string;
}

export interface HelloOk {
  type: 'hello-ok';
  protocol: number;
  server: { version: string; connId: string; hostId: string; name: string };
  features: { methods: string[]; events: string[] };
  snapshot: { uptimeMs: number; presence: PresenceEntry[]; stateVersion: StateVersion };
  policy: { maxPayload: number; maxBufferedBytes: number; tickIntervalMs: number };
}

export function parsePresenceEntry(v: unknown): PresenceEntry | undefined {
  if (!isObject(v)) return undefined;
  const key = str(v.key);
  if (!key) return undefined;
  const e: PresenceEntry = {
    key,
    displayName: str(v.displayName) ?? key,
    platform: str(v.platform) ?? 'unknown',
    role: str(v.role) ?? 'unknown',
    mode: str(v.mode) ?? '',
  };
  const deviceId = str(v.deviceId);
  if (deviceId) e.deviceId = deviceId;
  for (const k of ['connectedSinceMs', 'lastSeenMs', 'lastActivityMs'] as const) {
    const n = num(v[k]);
    if (n !== undefined) e[k] = n;
  }
  const addr = str(v.remoteAddr);
  if (addr) e.remoteAddr = addr;
  return e;
}

/** Reads `hello-ok`; `undefined` if the payload is not one (then the UI must not claim to be connected). */
export function parseHelloOk(v: unknown): HelloOk | undefined {
  if (!isObject(v) || v.type !== 'hello-ok') return undefined;
  const server = isObject(v.server) ? v.server : {};
  const features = isObject(v.features) ? v.features : {};
  const snapshot = isObject(v.snapshot) ? v.snapshot : {};
  const policy = isObject(v.policy) ? v.policy : {};
  const sv = isObject(snapshot.stateVersion) ? snapshot.stateVersion : {};
  const presence = Array.isArray(snapshot.presence)
    ? snapshot.presence.map(parsePresenceEntry).filter((e): e is PresenceEntry => !!e)
    : [];
  return {
    type: 'hello-ok',
    protocol: num(v.protocol) ?? PROTOCOL_VERSION,
    server: {
      version: str(server.version) ?? '',
      connId: str(server.connId) ?? '',
      hostId: str(server.hostId) ?? '',
      name: str(server.name) ?? '',
    },
    features: { methods: strArray(features.methods), events: strArray(features.events) },
    snapshot: {
      uptimeMs: num(snapshot.uptimeMs) ?? 0,
      presence,
      stateVersion: { presence: num(sv.presence) ?? 0, health: num(sv.health) ?? 0 },
    },
    policy: {
      maxPayload: num(policy.maxPayload) ?? 26214400,
      maxBufferedBytes: num(policy.maxBufferedBytes) ?? 52428800,
      tickIntervalMs: num(policy.tickIntervalMs) ?? 15000,
    },
  };
}
