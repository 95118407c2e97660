// A typed operator client for the Perch gateway over one WebSocket (docs/protocol.md §3).
//
// - answers `connect.challenge` with `connect` as an operator (`perch-ui`, mode `ui`, the token);
// - is "connected" only after `hello-ok`;
// - correlates request ids, with a per-call deadline that sends `cancel`;
// - delivers events to listeners (one bad listener or one bad frame breaks nothing);
// - reconnects with capped exponential backoff and jitter, except when retrying cannot help
//   (a wrong token, a protocol mismatch).
//
// The token is never logged: nothing in this module writes to the console.

import {
  PROTOCOL_VERSION,
  type ConnectParams,
  type ErrorShape,
  type EventFrame,
  isObject,
  parseErrorShape,
  parseFrame,
  parseHelloOk,
} from './frames';
import { type ConnEvent, type ConnState, initialState, transition } from './state';

/** The part of the browser's WebSocket this client uses, so tests can pass a fake. */
export interface WebSocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => WebSocketLike;

export interface ClientOptions {
  url: string;
  token: string;
  /** `client.platform`: macos, windows, linux, ios, android or web. */
  platform: string;
  version?: string;
  displayName?: string;
  locale?: string;
  createSocket?: SocketFactory;
  random?: () => number;
  now?: () => number;
  /** How long to wait for the challenge and hello-ok before giving up on a socket. */
  handshakeTimeoutMs?: number;
  /** Deadline of a call that names none. */
  callTimeoutMs?: number;
}

/** A failed call: the host's ErrorShape, or a client-side one (NOT_CONNECTED, CONNECTION_LOST, TIMEOUT). */
export class RpcError extends Error implements ErrorShape {
  readonly code: string;
  readonly details?: unknown;
  readonly retryable?: boolean;
  constructor(shape: ErrorShape) {
    super(shape.message);
    this.name = 'RpcError';
    this.code = shape.code;
    if (shape.details !== undefined) this.details = shape.details;
    if (shape.retryable !== undefined) this.retryable = shape.retryable;
  }
  toShape(): ErrorShape {
    const s: ErrorShape = { code: this.code, message: this.message };
    if (this.details !== undefined) s.details = this.details;
    return s;
  }
}

/** Any thrown value as an ErrorShape. */
export function toErrorShape(e: unknown): ErrorShape {
  if (e instanceof RpcError) return e.toShape();
  if (e instanceof Error) return { code: 'CLIENT_ERROR', message: e.message };
  return { code: 'CLIENT_ERROR', message: String(e) };
}

export type EventListener = (payload: unknown, frame: EventFrame) => void;
export type StateListener = (state: ConnState) => void;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: RpcError) => void;
  timer: ReturnType<typeof setTimeout>;
}

export function buildConnectParams(o: Pick<ClientOptions, 'token' | 'platform' | 'version' | 'displayName' | 'locale'>): ConnectParams {
  const p: ConnectParams = {
    minProtocol: PROTOCOL_VERSION,
    maxProtocol: PROTOCOL_VERSION,
    client: {
      id: 'perch-ui',
      displayName: o.displayName ?? 'Perch UI',
      version: o.version ?? '0.1.0',
      platform: o.platform,
      mode: 'ui',
    },
    role: 'operator',
    scopes: [],
    auth: { token: o.token },
  };
  if (o.locale) p.locale = o.locale;
  return p;
}

function describeClose(code: number): string {
  switch (code) {
    case 1000:
      return 'the connection was closed';
    case 1001:
      return 'the host is shutting down';
    case 1006:
      return 'the host cannot be reached';
    case 1008:
      return 'the host refused the connection';
    case 1009:
      return 'a message was too large';
    case 4000:
      return 'the connection went silent';
    default:
      return `the connection closed (code ${code})`;
  }
}

export class PerchClient {
  private st: ConnState = initialState;
  private opts: ClientOptions;
  private ws: WebSocketLike | null = null;
  /** Bumped for every socket, so callbacks of an old socket are ignored. */
  private generation = 0;
  private nextId = 0;
  private connectId: string | null = null;
  private closeReason: string | null = null;
  private pending = new Map<string, Pending>();
  private listeners = new Map<string, Set<EventListener>>();
  private stateListeners = new Set<StateListener>();
  private handshakeTimer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private watchdogTimer: ReturnType<typeof setTimeout> | null = null;
  private lastRx = 0;
  /** Frames from the host that could not be read; shown in diagnostics, never fatal. */
  droppedFrames = 0;

  constructor(opts: ClientOptions) {
    this.opts = opts;
  }

  get state(): ConnState {
    return this.st;
  }

  /** Whether the host said at hello-ok that it has this method (false before hello-ok). */
  supports(method: string): boolean {
    return this.st.kind === 'connected' && this.st.hello.features.methods.includes(method);
  }

  onState(fn: StateListener): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Listen to one event by name, or to every event with `*`. */
  on(event: string, fn: EventListener): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  start(): void {
    this.clearTimer('retryTimer');
    this.dispatch({ type: 'start' });
    if (this.st.kind === 'connecting' && !this.ws) this.open();
  }

  /** Replaces the token and connects afresh (after the sign-in form). */
  setToken(token: string): void {
    this.opts = { ...this.opts, token };
    this.teardownSocket();
    this.dispatch({ type: 'stop' });
    this.start();
  }

  stop(): void {
    this.teardownSocket();
    this.dispatch({ type: 'stop' });
  }

  /** Calls a method; resolves with the payload or rejects with an RpcError. */
  call<T = unknown>(method: string, params?: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    if (this.st.kind !== 'connected' || !this.ws) {
      return Promise.reject(new RpcError({ code: 'NOT_CONNECTED', message: 'not connected to the host' }));
    }
    const id = `r${++this.nextId}`;
    const frame: Record<string, unknown> = { type: 'req', id, method };
    if (params !== undefined) frame.params = params;
    const ws = this.ws;
    const timeoutMs = options.timeoutMs ?? this.opts.callTimeoutMs ?? 30_000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        try {
          ws.send(JSON.stringify({ type: 'cancel', id }));
        } catch {
          // the socket is going away; the call is over either way
        }
        reject(new RpcError({ code: 'TIMEOUT', message: `${method} got no answer within ${Math.round(timeoutMs / 1000)} s` }));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      try {
        ws.send(JSON.stringify(frame));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new RpcError({ code: 'CONNECTION_LOST', message: `could not send ${method}: ${e instanceof Error ? e.message : String(e)}` }));
      }
    });
  }

  // ---- internals ----

  private dispatch(event: ConnEvent): void {
    const next = transition(this.st, event);
    if (next === this.st) return;
    this.st = next;
    for (const fn of [...this.stateListeners]) {
      try {
        fn(next);
      } catch {
        // a broken listener must not break the connection
      }
    }
  }

  private open(): void {
    const gen = ++this.generation;
    this.connectId = null;
    this.closeReason = null;
    let ws: WebSocketLike;
    try {
      ws = (this.opts.createSocket ?? ((url) => new WebSocket(url) as unknown as WebSocketLike))(this.opts.url);
    } catch (e) {
      this.lost(e instanceof Error ? e.message : 'cannot open the connection');
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (gen === this.generation) this.receive(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen !== this.generation) return;
      this.ws = null;
      this.lost(this.closeReason ?? describeClose(ev?.code ?? 1006));
    };
    ws.onerror = () => {
      // onclose follows with the details that exist
    };
    this.handshakeTimer = setTimeout(() => {
      if (gen !== this.generation || this.st.kind !== 'connecting') return;
      this.closeReason = 'the host did not complete the handshake in time';
      this.closeSocket(4000, 'handshake timeout');
    }, this.opts.handshakeTimeoutMs ?? 15_000);
  }

  private receive(data: unknown): void {
    this.lastRx = this.now();
    const frame = parseFrame(data);
    if (!frame) {
      this.droppedFrames++;
      return;
    }
    if (frame.type === 'res') {
      if (frame.id === this.connectId) {
        this.connectId = null;
        this.onConnectAnswer(frame.ok ? { ok: true, payload: frame.payload } : { ok: false, error: frame.error });
        return;
      }
      const p = this.pending.get(frame.id);
      if (!p) return; // unknown id, or a second answer (CANCELLED after the real one): ignore
      this.pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.ok) p.resolve(frame.payload);
      else p.reject(new RpcError(frame.error));
      return;
    }
    switch (frame.event) {
      case 'connect.challenge':
        if (this.st.kind === 'connecting' && this.connectId === null) this.sendConnect();
        return;
      case 'connection.closing': {
        const err = isObject(frame.payload) ? parseErrorShape(frame.payload.error) : undefined;
        if (err) this.closeReason = err.message || err.code;
        break;
      }
      case 'shutdown':
        this.closeReason = 'the host is shutting down';
        break;
    }
    if (this.st.kind === 'connected') this.emit(frame);
  }

  private sendConnect(): void {
    if (!this.ws) return;
    const id = `c${++this.nextId}`;
    this.connectId = id;
    const params = buildConnectParams(this.opts);
    try {
      this.ws.send(JSON.stringify({ type: 'req', id, method: 'connect', params }));
    } catch {
      this.closeReason = 'could not send the connect request';
      this.closeSocket(1000);
    }
  }

  private onConnectAnswer(answer: { ok: true; payload: unknown } | { ok: false; error: ErrorShape }): void {
    if (!answer.ok) {
      this.closeReason = answer.error.message || answer.error.code;
      this.dispatch({ type: 'refused', error: answer.error });
      if (this.st.kind === 'unauthorized' || this.st.kind === 'closed') {
        // Retrying with the same token cannot help: drop the socket without scheduling a retry.
        this.teardownSocket();
      }
      return;
    }
    const hello = parseHelloOk(answer.payload);
    if (!hello) {
      this.closeReason = 'the host sent an unreadable hello';
      this.closeSocket(1000);
      return;
    }
    this.clearTimer('handshakeTimer');
    this.dispatch({ type: 'hello', hello });
    this.armWatchdog(hello.policy.tickIntervalMs);
  }

  private armWatchdog(tickMs: number): void {
    const interval = Math.max(1000, tickMs);
    const limit = 2 * interval + 5000;
    const check = () => {
      if (this.st.kind !== 'connected') return;
      if (this.now() - this.lastRx > limit) {
        this.closeReason = 'the host stopped answering';
        this.closeSocket(4000, 'tick timeout');
        return;
      }
      this.watchdogTimer = setTimeout(check, interval);
    };
    this.clearTimer('watchdogTimer');
    this.watchdogTimer = setTimeout(check, interval);
  }

  private emit(frame: EventFrame): void {
    const targets = [...(this.listeners.get(frame.event) ?? []), ...(this.listeners.get('*') ?? [])];
    for (const fn of targets) {
      try {
        fn(frame.payload, frame);
      } catch {
        // one broken view must not stop the others from hearing the event
      }
    }
  }

  /** The socket is gone (or never opened): fail pending calls and schedule a retry. */
  private lost(reason: string): void {
    this.clearTimer('handshakeTimer');
    this.clearTimer('watchdogTimer');
    this.failPending('CONNECTION_LOST', `the connection to the host was lost: ${reason}`);
    this.dispatch({ type: 'lost', reason, jitter: (this.opts.random ?? Math.random)() });
    if (this.st.kind === 'retrying') {
      const delay = this.st.delayMs;
      this.clearTimer('retryTimer');
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.st.kind !== 'retrying') return;
        this.dispatch({ type: 'retry' });
        this.open();
      }, delay);
    }
  }

  /** Closes the current socket; its onclose then runs `lost`. */
  private closeSocket(code: number, reason?: string): void {
    const ws = this.ws;
    if (!ws) return;
    try {
      ws.close(code === 4000 || code === 1000 ? code : 1000, reason);
    } catch {
      // already closing
    }
  }

  /** Drops the socket without a retry: its callbacks become stale. */
  private teardownSocket(): void {
    this.generation++;
    this.clearTimer('handshakeTimer');
    this.clearTimer('watchdogTimer');
    this.clearTimer('retryTimer');
    const ws = this.ws;
    this.ws = null;
    this.connectId = null;
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
    this.failPending('CONNECTION_LOST', 'the connection to the host was closed');
  }

  private failPending(code: string, message: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(new RpcError({ code, message }));
    }
  }

  private clearTimer(which: 'handshakeTimer' | 'retryTimer' | 'watchdogTimer'): void {
    const t = this[which];
    if (t !== null) clearTimeout(t);
    this[which] = null;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}

/** `client.platform` from the browser, in the host's vocabulary. */
export function detectPlatform(nav: { userAgent?: string; platform?: string; userAgentData?: { platform?: string } } | undefined): string {
  const raw = `${nav?.userAgentData?.platform ?? ''} ${nav?.platform ?? ''} ${nav?.userAgent ?? ''}`.toLowerCase();
  if (/iphone|ipad|ios/.test(raw)) return 'ios';
  if (/android/.test(raw)) return 'android';
  if (/mac/.test(raw)) return 'macos';
  if (/win/.test(raw)) return 'windows';
  if (/cros/.test(raw)) return 'chromeos';
  if (/linux|x11/.test(raw)) return 'linux';
  return 'web';
}

/** `ws(s)://HOST/` for the page's own host: the gateway serves both the UI and the socket. */
export function socketUrl(loc: { protocol: string; host: string }): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/`;
}
