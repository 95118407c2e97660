// A scripted stand-in for the browser's WebSocket, for the client's unit tests.

import type { SocketFactory, WebSocketLike } from '../protocol/client';

export class FakeSocket implements WebSocketLike {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  /** Frames the client sent, parsed. */
  sent: Record<string, unknown>[] = [];
  closed: { code: number; reason: string } | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.closed) throw new Error('socket is closed');
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }

  // ---- the host's side ----

  /** Delivers raw data (a string is delivered as is; anything else as JSON). */
  deliver(data: unknown): void {
    this.onmessage?.({ data: typeof data === 'string' ? data : JSON.stringify(data) });
  }

  deliverRaw(data: unknown): void {
    this.onmessage?.({ data });
  }

  event(event: string, payload: unknown, extra: Record<string, unknown> = {}): void {
    this.deliver({ type: 'event', event, payload, ...extra });
  }

  challenge(): void {
    this.event('connect.challenge', { nonce: 'n-123', ts: 1 }, { seq: 1 });
  }

  /** The last request the client sent. */
  lastReq(method?: string): { id: string; method: string; params?: unknown } {
    const reqs = this.sent.filter((f) => f.type === 'req' && (method === undefined || f.method === method));
    const r = reqs[reqs.length - 1];
    if (!r) throw new Error(`no ${method ?? ''} request sent`);
    return r as { id: string; method: string; params?: unknown };
  }

  ok(id: string, payload: unknown): void {
    this.deliver({ type: 'res', id, ok: true, payload });
  }

  fail(id: string, error: Record<string, unknown>): void {
    this.deliver({ type: 'res', id, ok: false, error });
  }

  serverClose(code = 1006, reason = ''): void {
    if (this.closed) return;
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }
}

export function helloOk(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'hello-ok',
    protocol: 4,
    server: { version: '0.1.0', connId: 'c7', hostId: '24f6ed6acbfe1009', name: 'studio' },
    features: { methods: ['status', 'node.list', 'chat.send'], events: ['tick', 'presence'] },
    snapshot: { uptimeMs: 5, presence: [], stateVersion: { presence: 3, health: 0 } },
    auth: { role: 'operator', scopes: [] },
    policy: { maxPayload: 26214400, maxBufferedBytes: 52428800, tickIntervalMs: 15000 },
    ...overrides,
  };
}

/** A factory that records every socket it makes. */
export function socketFactory(): { factory: SocketFactory; sockets: FakeSocket[]; last: () => FakeSocket } {
  const sockets: FakeSocket[] = [];
  return {
    sockets,
    factory: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    last: () => {
      const s = sockets[sockets.length - 1];
      if (!s) throw new Error('no socket opened');
      return s;
    },
  };
}
